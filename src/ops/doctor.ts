import Redis from 'ioredis';
import { Admin, ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { kafkaSecurityOptions } from '../config/kafka-options';
import { KadeConfig, dlqTopic } from '../config/load';
import { redisConnection } from '../config/redis-options';
import { TopicSpec, topicSpecs } from '../ingest/topics';
import { connectionProblem, errorCodes } from './connection-errors';
import { loadRules, defaultRulesDir } from '../rules/load-rules';

/**
 * `kade doctor`: checks what kade needs from its surroundings and says, in plain words, what is
 * wrong and how to fix it. Every check prints one line starting with OK, PROBLEM or SKIP (a check
 * that could not run because an earlier one failed); the exit code is 1 when any line is PROBLEM.
 *
 * Every network call is bounded (short connect and request timeouts, one retry, and an overall
 * bound per section), so an unreachable Kafka or Redis is reported in seconds, not minutes.
 */

type Status = 'OK' | 'PROBLEM' | 'SKIP';

interface Check {
  status: Status;
  text: string;
}

const ok = (text: string): Check => ({ status: 'OK', text });
const problem = (text: string, fix: string): Check => ({ status: 'PROBLEM', text: `${text} Fix: ${fix}` });
const skip = (text: string): Check => ({ status: 'SKIP', text });

/** Upper bound of each section (Kafka + topics, Redis); they run concurrently. */
const SECTION_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 3_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** kade uses ZADD ... GT (Redis 6.2); it is tested on 7.0. (State layout 3 used SET ... NX GET, 7.0.) */
const MIN_REDIS: [number, number] = [6, 2];

export async function runDoctor(config: KadeConfig, out: (line: string) => void): Promise<number> {
  const print = (c: Check): void => out(`${c.status.padEnd(8)} ${c.text}`);
  // Kafka and Redis are checked at the same time; lines are printed in a fixed order.
  const kafkaChecks = bounded(checkKafka(config), 'Kafka', 'kafka.brokers (KADE_KAFKA_BROKERS)');
  const redisChecks = bounded(checkRedis(config), 'Redis', 'redis.url (KADE_REDIS_URL)');
  const all: Check[] = [];
  for (const section of [Promise.resolve(checkRules(config)), kafkaChecks, redisChecks]) {
    for (const c of await section) {
      all.push(c);
      print(c);
    }
  }
  const problems = all.filter((c) => c.status === 'PROBLEM').length;
  out(problems === 0
    ? `doctor: all ${all.length} checks passed`
    : `doctor: ${problems} problem${problems === 1 ? '' : 's'} found (of ${all.length} checks)`);
  return problems === 0 ? 0 : 1;
}

/** A section that fails unexpectedly or does not finish in time is one PROBLEM line, not a crash or a hang. */
async function bounded(running: Promise<Check[]>, what: string, key: string): Promise<Check[]> {
  const section = running.catch((err: unknown) => [problem(`${what}: the check failed (${message(err)}).`, `check ${key} and that this host may use it.`)]);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Check[]>((resolve) => {
    timer = setTimeout(() => resolve([problem(`${what}: no answer within ${SECTION_TIMEOUT_MS / 1000} s.`, `check ${key}, the network path and firewalls from this host.`)]), SECTION_TIMEOUT_MS);
  });
  try {
    return await Promise.race([section, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function message(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string }; errors?: Array<{ message?: string }> };
  const parts = [e?.message ?? String(err)];
  if (e?.cause?.message !== undefined && !parts[0].includes(e.cause.message)) parts.push(e.cause.message);
  // AggregateError (e.g. ECONNREFUSED on both 127.0.0.1 and ::1) has an empty message.
  if (parts[0] === '' && Array.isArray(e?.errors)) parts[0] = e.errors.map((x) => x.message ?? '').join('; ');
  // OpenSSL messages end with a newline; a check is one line.
  return parts.filter((p) => p.length > 0).join(': ').replace(/\s+/g, ' ').trim().replace(/\.+$/, '');
}

// ---------------------------------------------------------------------------------------- rules

function checkRules(config: KadeConfig): Check[] {
  const dir = config.rules.dir.length > 0 ? config.rules.dir : defaultRulesDir();
  try {
    const plans = loadRules(config.rules.dir);
    return [ok(`rules: ${plans.length} loaded from ${dir} (${plans.map((p) => `${p.id} v${p.plan.version}`).join(', ')}).`)];
  } catch (err) {
    return [problem(`rules: cannot load the rules: ${message(err)}.`, 'point rules.dir (KADE_RULES_DIR) at a folder of valid *.rule.json files, or leave it empty for the rules shipped with kade; `kade rules` shows what loads.')];
  }
}

// ---------------------------------------------------------------------------------------- Kafka

async function checkKafka(config: KadeConfig): Promise<Check[]> {
  const brokers = config.kafka.brokers.join(',');
  const kafka = new Kafka({
    clientId: `${config.kafka.clientId}-doctor`,
    brokers: config.kafka.brokers,
    ...kafkaSecurityOptions(config),
    connectionTimeout: CONNECT_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    retry: { retries: 1, initialRetryTime: 200, maxRetryTime: 1_000 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin({ retry: { retries: 1, initialRetryTime: 200, maxRetryTime: 1_000 } });
  const checks: Check[] = [];
  try {
    let cluster: Awaited<ReturnType<Admin['describeCluster']>>;
    try {
      await admin.connect();
      cluster = await admin.describeCluster();
    } catch (err) {
      const p = connectionProblem(err);
      const sasl = config.kafka.sasl;
      const first = p?.kind === 'authentication'
        ? problem(`Kafka: authentication failed at ${brokers} as user "${sasl.username}" with ${sasl.mechanism.toUpperCase()} (${message(err)}).`, p.fix)
        : p?.kind === 'tls'
          ? problem(`Kafka: the TLS handshake with ${brokers} failed (${message(err)}).`, p.fix)
          : problem(`Kafka: cannot reach the brokers ${brokers} (${message(err)}).`, `check kafka.brokers (KADE_KAFKA_BROKERS, host:port list), that the brokers run, and that their advertised listeners resolve and are reachable from this host${kafkaHint(config, err)}.`);
      return [first, skip(`topics: not checked because ${p === null ? 'Kafka is unreachable' : 'kade cannot connect to Kafka'}.`)];
    }
    checks.push(ok(`Kafka: reachable at ${brokers}; cluster ${cluster.clusterId ?? '(no id)'}, ${cluster.brokers.length} broker(s), controller ${cluster.controller ?? 'unknown'}.`));
    const rf = config.topics.replicationFactor;
    checks.push(cluster.brokers.length >= rf
      ? ok(`Kafka: replication factor ${rf} (topics.replicationFactor) fits the ${cluster.brokers.length} broker(s).`)
      : problem(`Kafka: topics.replicationFactor is ${rf} but the cluster has ${cluster.brokers.length} broker(s), so \`kade topics\` cannot create missing topics.`, `set KADE_TOPIC_REPLICATION_FACTOR to at most ${cluster.brokers.length}.`));
    try {
      checks.push(...await checkTopics(admin, config));
    } catch (err) {
      checks.push(problem(`topics: cannot read topic metadata (${message(err)}).`, 'the bootstrap broker answered but another broker did not: check the brokers\' advertised.listeners are reachable from this host.'));
    }
    return checks;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** What a closed or reset connection may mean, given the security settings. */
function kafkaHint(config: KadeConfig, err: unknown): string {
  if ((err as Error).name === 'KafkaJSConnectionClosedError') return '; a broker that closes the connection at once may expect SASL or TLS: see kafka.sasl.mechanism and kafka.ssl.enabled';
  // TLS 1.3: a listener that requires a client certificate may reset the connection after the handshake.
  if (config.kafka.ssl.enabled && config.kafka.ssl.certFile === '' && errorCodes(err).includes('ECONNRESET')) return '; a TLS listener that requires client certificates resets connections without one: set kafka.ssl.certFile and kafka.ssl.keyFile';
  return '';
}

function roleOf(topic: string, config: KadeConfig): string {
  if (topic === config.topics.raw) return 'raw audit topic';
  if (topic === dlqTopic(config)) return 'dead-letter topic';
  if (topic === config.topics.keyed) return 'keyed topic';
  if (topic === config.topics.alerts) return 'alerts topic';
  return 'topic';
}

async function checkTopics(admin: Admin, config: KadeConfig): Promise<Check[]> {
  const specs = topicSpecs(config);
  const existing = new Set(await admin.listTopics());
  const present = specs.filter((s) => existing.has(s.topic));
  const meta = present.length > 0 ? await admin.fetchTopicMetadata({ topics: present.map((s) => s.topic) }) : { topics: [] };
  const partitions = new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
  const withConfig = present.filter((s) => (s.configEntries ?? []).length > 0);
  const described = withConfig.length > 0
    ? await admin.describeConfigs({ includeSynonyms: false, resources: withConfig.map((s) => ({ type: ConfigResourceTypes.TOPIC, name: s.topic, configNames: (s.configEntries ?? []).map((e) => e.name) })) })
    : { resources: [] };
  const topicConfig = new Map(described.resources.map((r) => [r.resourceName, new Map(r.configEntries.map((e) => [e.configName, e.configValue]))]));
  const keyedRetention = existing.has(config.topics.keyed) ? await retentionMs(admin, config.topics.keyed) : null;

  return specs.flatMap((spec): Check[] => {
    const what = `topic ${spec.topic} (${roleOf(spec.topic, config)})`;
    const have = partitions.get(spec.topic);
    if (!existing.has(spec.topic) || have === undefined) {
      return [problem(`${what} does not exist.`, `run \`kade topics\` (creates the missing topics with the configured partitions: ${spec.numPartitions} here), or create it yourself with ${spec.numPartitions} partition(s).`)];
    }
    const lines: Check[] = [partitionCheck(spec, have, what, config)];
    if (spec.topic === config.topics.keyed && keyedRetention !== null) lines.push(retentionCheck(keyedRetention, what, config));
    const actual = topicConfig.get(spec.topic);
    for (const entry of spec.configEntries ?? []) {
      const value = actual?.get(entry.name);
      if (value === undefined || Number(value) < Number(entry.value)) {
        lines.push(problem(`${what} has ${entry.name}=${value ?? 'unknown'}, kade needs at least ${entry.value} so that an oversized raw record can be kept whole.`, `kafka-configs.sh --alter --entity-type topics --entity-name ${spec.topic} --add-config ${entry.name}=${entry.value}`));
      } else {
        lines.push(ok(`${what} has ${entry.name}=${value}.`));
      }
    }
    return lines;
  });
}

async function retentionMs(admin: Admin, topic: string): Promise<number | null> {
  const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }] });
  const v = d.resources[0]?.configEntries.find((e) => e.configName === 'retention.ms')?.configValue;
  return v === undefined ? null : Number(v);
}

/**
 * The keyed topic is read again: a rebuild replays its last ~7.5 minutes of event time, and an
 * alert of a count-bounded rule reads its window's records back (README, Guarantees). Both need
 * them still there after the detector's lag: at least detector.stateTtlSeconds (1 h) of retention.
 */
function retentionCheck(ms: number, what: string, config: KadeConfig): Check {
  const need = config.detector.stateTtlSeconds * 1000;
  const hours = (x: number): string => `${(x / 3_600_000).toFixed(x % 3_600_000 === 0 ? 0 : 2)} h`;
  if (ms < 0) return ok(`${what} keeps records forever (retention.ms=${ms}).`);
  if (ms < need) {
    return problem(
      `${what} keeps records ${hours(ms)} (retention.ms=${ms}), less than detector.stateTtlSeconds (${hours(need)}): a detector that falls that far behind cannot rebuild lost state or read an alert's records back for its values().`,
      `kafka-configs.sh --alter --entity-type topics --entity-name ${config.topics.keyed} --add-config retention.ms=86400000 (1 day, as k8s/kafka-topics.yaml).`,
    );
  }
  return ok(`${what} keeps records ${hours(ms)} (retention.ms=${ms}).`);
}

function partitionCheck(spec: TopicSpec, have: number, what: string, config: KadeConfig): Check {
  const want = spec.numPartitions;
  if (have === want) return ok(`${what} exists with ${have} partition(s), as configured.`);
  if (spec.topic === config.topics.keyed) {
    if (have < want) {
      return problem(
        `${what} has ${have} partition(s) but topics.keyedPartitions is ${want}: at most ${have} detectors can work in parallel, extra detectors stay idle.`,
        `set KADE_TOPIC_KEYED_PARTITIONS=${have} (and scale detectors to at most ${have}), or add partitions while no detector runs and no window is open (a group's partition changes with the count, and its open windows would be split).`,
      );
    }
    return ok(`${what} has ${have} partitions, more than topics.keyedPartitions (${want}): fine, up to ${have} detectors can work in parallel; set KADE_TOPIC_KEYED_PARTITIONS=${have} to say so.`);
  }
  // The other counts only apply when kade creates the topic; an existing topic is used as it is.
  const note = spec.topic === config.topics.raw ? ` (routers work in parallel up to ${have})` : '';
  return ok(`${what} exists with ${have} partition(s), configured ${want}${note}: fine, kade uses existing topics as they are.`);
}

// ---------------------------------------------------------------------------------------- Redis

function parseInfo(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

function versionAtLeast(version: string, [major, minor]: [number, number]): boolean {
  const [a, b] = version.split('.').map((x) => Number.parseInt(x, 10));
  return a > major || (a === major && (b ?? 0) >= minor);
}

function bytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Under TLS 1.3 a server that wants a client certificate accepts the handshake, then resets. */
function resetWithoutCert(config: KadeConfig, err: unknown): boolean {
  return config.redis.url.startsWith('rediss:') && config.redis.tls.certFile === '' && (err as { code?: string } | undefined)?.code === 'ECONNRESET';
}

async function checkRedis(config: KadeConfig): Promise<Check[]> {
  const { url: where, options } = redisConnection(config);
  const redis = new Redis(where, {
    ...options,
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: REQUEST_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: () => null, // no reconnect loop: one attempt, then report
  });
  // connect() rejects with a bare "Connection is closed."; the socket error says why.
  let lastError: unknown;
  redis.on('error', (err) => { lastError = err; });
  try {
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      // An AUTH failure rejects ping() (or connect()) itself; a socket or TLS error comes as an 'error' event.
      const p = connectionProblem(err) ?? connectionProblem(lastError);
      const first = p?.kind === 'authentication'
        ? problem(`Redis: authentication failed at ${where} (${message(p.message)}).`, p.fix)
        : p?.kind === 'tls'
          ? problem(`Redis: the TLS handshake with ${where} failed (${message(p.message)}).`, p.fix)
          : problem(`Redis: cannot reach ${where} (${message(lastError ?? err)}).`, `check redis.url (KADE_REDIS_URL: redis:// or rediss://, user and password in the URL if needed), that Redis runs, and that this host may connect to it${resetWithoutCert(config, lastError) ? '; a TLS server that requires client certificates (tls-auth-clients yes) resets connections without one: set redis.tls.certFile and redis.tls.keyFile' : ''}.`);
      return [first, skip(`Redis version and eviction policy: not checked because ${p === null ? 'Redis is unreachable' : 'kade cannot connect to Redis'}.`)];
    }
    const checks: Check[] = [ok(`Redis: reachable at ${where}.`)];
    const server = parseInfo(await redis.info('server'));
    const version = server.get('redis_version') ?? 'unknown';
    checks.push(versionAtLeast(version, MIN_REDIS)
      ? ok(`Redis: version ${version} (kade needs ${MIN_REDIS.join('.')} or newer for ZADD GT).`)
      : problem(`Redis: version ${version} is too old; kade needs ${MIN_REDIS.join('.')} or newer (it uses ZADD ... GT).`, `upgrade Redis to ${MIN_REDIS.join('.')} or newer.`));

    // INFO memory works where CONFIG GET is disabled (most managed Redis services).
    const memory = parseInfo(await redis.info('memory'));
    const policy = memory.get('maxmemory_policy') ?? 'unknown';
    const used = Number(memory.get('used_memory') ?? 'NaN');
    const max = Number(memory.get('maxmemory') ?? 'NaN');
    const usage = `used_memory ${Number.isFinite(used) ? bytes(used) : 'unknown'}, maxmemory ${max === 0 ? '0 (no limit)' : Number.isFinite(max) ? bytes(max) : 'unknown'}`;
    if (policy === 'noeviction') {
      checks.push(ok(`Redis: maxmemory-policy is noeviction, kade's keys are never evicted (${usage}).`));
    } else {
      const why = policy.startsWith('volatile-')
        ? 'every key kade writes has a TTL, so a volatile-* policy evicts kade\'s window state just like allkeys-* would'
        : policy.startsWith('allkeys-')
          ? 'allkeys-* evicts kade\'s window state under memory pressure'
          : 'kade cannot tell whether this policy evicts its keys';
      checks.push(problem(
        `Redis: maxmemory-policy is ${policy}; ${why}, and an evicted pane silently loses counts (missed alerts). Only noeviction is safe (${usage}).`,
        'set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction and in redis.conf, or the parameter group of a managed Redis), and size maxmemory for the state.',
      ));
    }
    if (Number.isFinite(used) && Number.isFinite(max) && max > 0 && used >= 0.9 * max) {
      checks.push(problem(
        `Redis: memory is ${Math.round((100 * used) / max)}% full (${usage}); at the limit, writes fail and detectors stall.`,
        'raise maxmemory, or lower detector.stateTtlSeconds (KADE_DETECTOR_STATE_TTL_SECONDS) if it is far above window + lateness.',
      ));
    }
    return checks;
  } finally {
    redis.disconnect();
  }
}
