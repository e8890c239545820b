import Redis from 'ioredis';
import { KadeConfig } from './config/load';
import { redisConnection } from './config/redis-options';
import { DetectorStage } from './detect/detector-stage';
import { createKafka } from './ingest/kafka';
import { RouterStage } from './ingest/router-stage';
import { ensureTopics } from './ingest/topics';
import { Logger } from './ops/logger';
import { Metrics } from './ops/metrics';
import { loadRules } from './rules/load-rules';
import { startHttp } from './ops/http';
import { packageRoot } from './util/package-root';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface Running {
  router: RouterStage | null;
  detector: DetectorStage | null;
  metrics: Metrics;
  stop(): Promise<void>;
}

/** Longer than any pipeline kade sends (a batch's pane updates), shorter than a session timeout. */
const REDIS_COMMAND_TIMEOUT_MS = 15_000;

/** kade's Redis client: credentials and TLS from the config (see redisConnection), reconnecting. */
export function createRedis(config: KadeConfig, log: Logger): Redis {
  const { url, options } = redisConnection(config);
  const redis = new Redis(url, {
    ...options,
    // Commands wait for a reconnect instead of failing at once; the batch then fails retriably.
    maxRetriesPerRequest: 20,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000) + Math.floor(Math.random() * 100),
    enableAutoPipelining: false,
    // Every command goes to the server of the current connection, never queued or re-sent across
    // a reconnect: the detector verifies its state after each reconnect (a Redis restarted empty
    // must not receive writes before that), and a failed batch is redelivered by Kafka.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    // Without a resend, a command in flight when the connection drops is never answered if the
    // reconnect succeeds (ioredis 5 leaves it pending): time it out so the batch fails and retries.
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  });
  // Connection errors are retried by ioredis; say so once per distinct error, not per retry.
  let last = '';
  redis.on('error', (err: Error) => {
    if (err.message === last) return;
    last = err.message;
    log.warn({ err }, 'redis connection error; retrying');
  });
  redis.on('ready', () => {
    if (last !== '') log.info('redis connection restored');
    last = '';
  });
  return redis;
}

/** Resolves when the client is ready or after ms, whichever comes first (never rejects). */
async function readyWithin(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    redis.once('ready', resolve);
  });
  clearTimeout(timer);
}

/** PING with a deadline: a probe must answer even while commands queue for a reconnect. */
async function pingWithin(redis: Redis, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      redis.ping().then((r) => r === 'PONG'),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The composition root: config -> clients -> stages -> start. The caller owns signals. */
export async function startKade(config: KadeConfig, log: Logger, metrics = new Metrics(true)): Promise<Running> {
  const plans = loadRules(config.rules.dir);
  log.info({
    rules: plans.map((p) => p.id), role: config.role, brokers: config.kafka.brokers,
    kafkaTls: config.kafka.ssl.enabled, kafkaSasl: config.kafka.sasl.mechanism, redis: redisConnection(config).url,
  }, 'starting kade');
  const adminKafka = createKafka(config, log, 'admin');
  await ensureTopics(adminKafka, config, true);
  let router: RouterStage | null = null;
  let detector: DetectorStage | null = null;
  let redis: Redis | null = null;
  if (config.role === 'router' || config.role === 'all') {
    router = new RouterStage(createKafka(config, log, 'router'), config, plans, log.child({ module: 'router' }), metrics);
    await router.start();
  }
  if (config.role === 'detector' || config.role === 'all') {
    redis = createRedis(config, log.child({ module: 'redis' }));
    // Commands are not queued while disconnected: give the first connection a moment.
    await readyWithin(redis, 10_000);
    detector = new DetectorStage(createKafka(config, log, 'detector'), redis, config, plans, log.child({ module: 'detector' }), metrics);
    await detector.start();
  }
  const version = (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const http = config.http.port > 0
    ? await startHttp(config.http.port, metrics, {
      version,
      ready: async () => {
        if (redis !== null && redis.status !== 'ready') return false;
        if (redis !== null && !(await pingWithin(redis, 1000))) return false;
        return (router?.isReady() ?? true) && (detector?.isReady() ?? true);
      },
    })
    : null;
  let stopping: Promise<void> | null = null;
  return {
    router,
    detector,
    metrics,
    stop: () => (stopping ??= (async () => {
      await router?.close();
      await detector?.close();
      await redis?.quit();
      await new Promise<void>((resolve) => (http === null ? resolve() : http.close(() => resolve())));
      log.info('kade stopped');
    })()),
  };
}
