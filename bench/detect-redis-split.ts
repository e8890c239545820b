/**
 * Where the detector's Redis time goes, in-process on a real Redis, without Kafka:
 * `node dist/bench/detect-redis-split.js [events] [redisUrl] [actorsScale]`. The generator's stream is routed
 * into 6 keyed partitions (batches of 2,500, as a 1 MiB fetch gives), fed to one Detector per
 * partition order, then every window is closed by an idle tick. Prints, per RedisState operation,
 * the calls, the wall time the detector waited, and Redis's own CPU over the run
 * (INFO cpu; run it against an otherwise idle Redis).
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import Redis from 'ioredis';
import { CollectedValues, KeyedScanner } from '../src/ingest/keyed-scan';
import { loadRules } from '../src/rules/load-rules';
import { Detector, DetectorRecord } from '../src/detect/detector';
import { KeyBuilder } from '../src/state/keys';
import { RedisState } from '../src/state/redis-state';
import { generatedRawRecords, keyedByPartition } from './lib/keyed-stream';

const events = Number(process.argv[2] ?? 100_000);
const url = process.argv[3] ?? 'redis://127.0.0.1:6379';
const actorsScale = Number(process.argv[4] ?? 1);
const PARTITIONS = 6;
const BATCH = 2500;

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const v = (k: string): number => Number(/^used_cpu_(?:sys|user):/m.test(info) ? (new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0) : 0);
  return v('used_cpu_sys') + v('used_cpu_user');
}

async function main(): Promise<void> {
  const plans = loadRules('');
  const plan = plans[0];
  const scanner = KeyedScanner.forPlans([plan]);
  const collected = new CollectedValues();
  const keyedTopic = keyedByPartition(generatedRawRecords(events, actorsScale), plans, PARTITIONS);
  const parts: DetectorRecord[][] = keyedTopic.map((list) => list.map((m) => {
    const from = collected.length;
    const h = scanner.read(m.value, collected);
    return { offset: m.offset, eventTime: h.eventTime, collected, from, to: collected.length, kafkaKey: m.key.toString('utf8'), value: m.value };
  }));
  const redis = new Redis(url);
  const prefix = `split${process.pid}`;
  const waited = new Map<string, { calls: number; seconds: number }>();
  const state = new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 3600, (op, s) => {
    const w = waited.get(op) ?? { calls: 0, seconds: 0 };
    w.calls++;
    w.seconds += s;
    waited.set(op, w);
  });
  let now = Date.now();
  let alerts = 0;
  const detector = new Detector(plan, state, { publish: async (a) => { alerts += a.length; } }, {
    latenessMs: 600_000, idleTimeoutMs: 1000, suppressionMs: 0, now: () => now,
    // The keyed topic in memory: matching windows' records are read back from here.
    keyedRecords: {
      read: async (p, offsets) => {
        const want = new Set(offsets);
        return new Map(keyedTopic[p].filter((m) => want.has(m.offset)).map((m) => [m.offset, { key: m.key, value: m.value }]));
      },
    },
  });
  detector.assign(new Map());
  const cpu0 = await redisCpu(redis);
  const t0 = process.hrtime.bigint();
  // Interleave partitions batch by batch, as one consumer does.
  const cursors = parts.map(() => 0);
  for (let more = true; more;) {
    more = false;
    for (let p = 0; p < PARTITIONS; p++) {
      const recs = parts[p].slice(cursors[p], cursors[p] + BATCH);
      if (recs.length === 0) continue;
      more = true;
      cursors[p] += recs.length;
      await detector.onBatch(p, recs, parts[p].length);
    }
  }
  now += 3_600_000;
  await detector.onTick(true);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = (await redisCpu(redis)) - cpu0;
  const keyed = parts.reduce((n, p) => n + p.length, 0);
  process.stdout.write(`${keyed} keyed records, ${alerts} alerts, wall ${wall.toFixed(2)} s, Redis CPU ${cpu.toFixed(2)} s = ${(cpu * 1e6 / keyed).toFixed(1)} us/record\n`);
  process.stdout.write(`candidate windows: ${detector.evaluatedWindows} evaluated in Redis, ${detector.skippedWindows} skipped by their bounds\n`);
  for (const [op, w] of [...waited].sort((a, b) => b[1].seconds - a[1].seconds)) {
    process.stdout.write(`  ${op.padEnd(20)} ${String(w.calls).padStart(6)} calls  ${(w.seconds * 1000).toFixed(0).padStart(6)} ms waited  ${(w.seconds * 1e6 / keyed).toFixed(2)} us/record\n`);
  }
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  await redis.quit();
}

void main();
