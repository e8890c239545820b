import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Redis from 'ioredis';
import { KadeConfig, dlqTopic } from './config/load';
import { redisConnection } from './config/redis-options';
import { formatAlert } from './alerts/format-alert';
import { followAlerts } from './alerts/follow';
import { createKafka } from './ingest/kafka';
import { replay } from './ingest/replay';
import { Logger } from './ops/logger';
import { Metrics } from './ops/metrics';
import { startKade } from './main';
import { packageRoot } from './util/package-root';
import { loadRules } from './rules/load-rules';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

/**
 * The bundled demo: fresh topics and Redis prefix per run (so a second run behaves the same),
 * replay demo/audit-demo.jsonl, run router and detector in this process, print each alert, and
 * return once every window holding demo data has closed and every alert has been read.
 */
export async function runDemo(base: KadeConfig, log: Logger): Promise<number> {
  const run = `demo-${Date.now()}-${randomBytes(3).toString('hex')}`;
  const config: KadeConfig = {
    ...base,
    role: 'all',
    topics: { ...base.topics, raw: `kade.${run}.raw`, keyed: `kade.${run}.by-actor`, alerts: `kade.${run}.alerts`, dlq: '' },
    router: { ...base.router, groupId: `kade-${run}-router` },
    // A replay of a 20-minute log arrives as whole-log batches per raw partition: the lateness
    // must cover the replay's span, or the second partition's events would all be late.
    detector: { ...base.detector, groupId: `kade-${run}-detector`, latenessMs: Math.max(base.detector.latenessMs, 30 * 60_000), idleTimeoutMs: Math.min(base.detector.idleTimeoutMs, 2000), tickMs: 500 },
    redis: { ...base.redis, keyPrefix: `kade-${run}` },
  };
  const file = path.join(packageRoot(), 'demo', 'audit-demo.jsonl');
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(`kade demo: ${file}`);
  out(`  topics ${config.topics.raw} -> ${config.topics.keyed} -> ${config.topics.alerts}; redis prefix ${config.redis.keyPrefix}`);

  const metrics = new Metrics(false);
  const running = await startKade(config, log, metrics);
  const kafka = createKafka(config, log, 'demo');
  let alerts = 0;
  const follower = await followAlerts(kafka, config.topics.alerts, {
    fromBeginning: true,
    onAlert: (a) => {
      alerts++;
      out('');
      out(a.alert !== undefined ? formatAlert(a.alert) : JSON.stringify(a.ecs, null, 2));
    },
  });
  try {
    const replayed = await replay(kafka, [file], { topic: config.topics.raw, namespaceHeader: config.router.namespaceHeader, namespace: 'demo' });
    out(`  replayed ${replayed} audit records; waiting for every window to close...`);
    const plans = loadRules(config.rules.dir);
    const W = Math.max(...plans.map((p) => p.plan.window.sizeMs));
    const hop = Math.min(...plans.map((p) => p.plan.window.hopMs));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error('demo: windows did not close within 120 s');
      const routed = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'routed' });
      const filtered = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'filtered' });
      const dead = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'dead_lettered' });
      const routerDone = routed + filtered + dead >= replayed;
      let closed = routerDone;
      for (const parts of running.detector?.progress().values() ?? []) {
        for (const p of parts.values()) {
          if (p.streamTime === null) continue;
          const lastEnd = Math.floor(p.streamTime / hop) * hop + W;
          if (p.lastClosed === null || p.lastClosed < lastEnd) closed = false;
        }
      }
      if (closed && (await follower.caughtUp())) break;
      await sleep(250);
    }
    const routed = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'routed' });
    const filtered = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'filtered' });
    const dead = await counter(metrics, 'kade_events_total', { stage: 'router', outcome: 'dead_lettered' });
    const suppressed = await counter(metrics, 'kade_alerts_total', { outcome: 'suppressed' });
    out('');
    out(`kade demo done: ${replayed} records -> ${routed} routed, ${filtered} filtered by the rule, ${dead} dead-lettered; ${alerts} alert(s), ${suppressed} suppressed re-match(es)`);
    return 0;
  } finally {
    await follower.stop();
    await running.stop();
    await cleanup(config, kafka, log);
  }
}

/** Deletes the demo's topics and Redis keys. */
async function cleanup(config: KadeConfig, kafka: ReturnType<typeof createKafka>, log: Logger): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: [config.topics.raw, config.topics.keyed, config.topics.alerts, dlqTopic(config)] });
    await admin.deleteGroups([config.router.groupId, config.detector.groupId]).catch(() => undefined);
  } catch (err) {
    log.warn({ err }, 'demo: could not delete its topics');
  } finally {
    await admin.disconnect();
  }
  const { url, options } = redisConnection(config);
  const redis = new Redis(url, options);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.redis.keyPrefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}
