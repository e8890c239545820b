/**
 * `npm run bench`: kade's throughput, Redis cost, alert latency and memory, side by side with the
 * ceiling of its own stack (a no-op kafkajs consumer on the same topics), in one run.
 *
 *   npm run bench                          1M events, 3 runs of each measurement
 *   npm run bench -- --quick               100k events (smoke run)
 *   npm run bench -- --events 300000 --runs 5
 *   npm run bench -- --router-only --events 100000   only the no-op (raw) and router runs, docs untouched
 *   npm run bench -- --router-only --compare-cli /other/build/dist/src/cli.js   + that build's router, same run
 *   npm run bench -- --detector-only --compare-cli /other/build/dist/src/cli.js + that build's detector, same run
 *   flags: --seed N, --live-rate N, --live-seconds N, --live-attacks N, --no-live, --no-flat, --no-profile,
 *          --detector-only (detector + no-op keyed runs only; prints the figures, leaves docs/benchmarks.md alone),
 *          --router-only, --redis-url URL (default: a private redis-server on a free port), --keep (keep topics)
 *
 * Every worker (router, detector, no-op consumer) is a separate node process, so CPU, RSS and
 * profiles are per worker. See docs/benchmarks.md for the method and the latest figures.
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Redis from 'ioredis';
import { Admin, Kafka, Message, Partitioners } from 'kafkajs';
import { AlertCodec } from '../src/alerts/codec';
import { Alert } from '../src/alerts/alert';
import { headerString } from '../src/ingest/dead-letter';
import { sendChunked } from '../src/ingest/send-chunked';
import { loadRules } from '../src/rules/load-rules';
import { KeyBuilder, STATE_LAYOUT } from '../src/state/keys';
import { groupKafkaKey } from '../src/detect/group-id';
import { packageRoot } from '../src/util/package-root';
import { generateAuditStream, planAttacks } from '../test/helpers/audit-generator';
import { BROKERS, testKafka } from '../test/helpers/kafka';
import { RedisInstance, startRedisInstance } from '../test/helpers/redis-instance';
import {
  GroupTimes, LoadResult, createTopic, deleteGroupsQuietly, deleteTopicsQuietly, endOffsets, loadRawTopic, rawKey, total, watchGroup,
} from './lib/kafka-util';
import { ProfileSummary, summarizeProfile } from './lib/profile';
import { PaneCensus, PaneSample, ProxyCounts, RedisDelta, paneSampler, redisDelta, redisSnapshot, startCountingProxy } from './lib/redis-stats';
import { Machine, keptBlocks, machineInfo, mdTable, textTable } from './lib/report';
import { fmt, freePort, log, median, percentile, sleep } from './lib/util';
import { CLI, NOOP, Worker, benchConfig, cpuSecondsOf, kadeEnv, memoryOf, metric, scrapeMetrics, spawnClientWorker, spawnWorker } from './lib/workers';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  events: number;
  runs: number;
  quick: boolean;
  seed: number;
  live: boolean;
  liveRate: number;
  liveSeconds: number;
  liveAttacks: number;
  flat: boolean;
  profile: boolean;
  /** false: only the live run (debugging); docs/benchmarks.md is then left alone. */
  throughput: boolean;
  /** Only the detector and the no-op keyed consumer (one router run makes the keyed topic); docs/benchmarks.md left alone. */
  detectorOnly: boolean;
  /** Only the no-op (raw topic) and router runs (+ the router profile); docs/benchmarks.md is left alone. */
  routerOnly: boolean;
  /** Another build's dist/src/cli.js: its router (router-only mode) or detector (detector-only mode) runs after each run of this build's, for an A/B ratio. */
  compareCli: string | null;
  /** Extra node flags for this build's router processes, given without their leading -- (parseArgs refuses a value starting with a dash), space-separated: `--router-node-args max-semi-space-size=64`. */
  routerNodeArgs: string[];
  /** The same for this build's detector processes (`--detector-node-args max-semi-space-size=32`). */
  detectorNodeArgs: string[];
  /** Config overrides for this build's router processes only (`--router-set kafka.maxBytesPerPartition=4194304`). */
  routerSet: Record<string, unknown>;
  /** Config overrides for this build's detector processes only (`--detector-set detector.prefetchBatches=1`). */
  detectorSet: Record<string, unknown>;
  redisUrl: string | null;
  /** The profiled runs read the 10x-actors stream (needs the flat-cost runs). */
  profileX10: boolean;
  keep: boolean;
  latenessMs: number;
}

/** KEY=VALUE config overrides (numbers as numbers). */
function configSets(list: string[] | undefined, flag: string): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => {
    const at = kv.indexOf('=');
    if (at <= 0) throw new Error(`--${flag} takes KEY=VALUE, got ${kv}`);
    const v = kv.slice(at + 1);
    return [kv.slice(0, at), /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v];
  }));
}

/** Node flags given without their leading -- (parseArgs refuses a value starting with a dash). */
function nodeFlags(v: string | undefined): string[] {
  return (v ?? '').split(' ').filter((a) => a.length > 0).map((a) => (a.startsWith('-') ? a : `--${a}`));
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      events: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      seed: { type: 'string' },
      'live-rate': { type: 'string' },
      'live-seconds': { type: 'string' },
      'live-attacks': { type: 'string' },
      'no-live': { type: 'boolean', default: false },
      'no-flat': { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      'live-only': { type: 'boolean', default: false },
      'detector-only': { type: 'boolean', default: false },
      'router-only': { type: 'boolean', default: false },
      'compare-cli': { type: 'string' },
      'router-node-args': { type: 'string' },
      'detector-node-args': { type: 'string' },
      'router-set': { type: 'string', multiple: true },
      'detector-set': { type: 'string', multiple: true },
      'redis-url': { type: 'string' },
      'profile-x10': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench -- [--quick] [--events N] [--runs N] [--seed N] [--live-rate N] [--live-seconds N] [--live-attacks N]
                        [--no-live] [--no-flat] [--no-profile] [--live-only] [--detector-only] [--router-only] [--compare-cli PATH] [--router-node-args ARGS] [--detector-node-args ARGS] [--router-set KEY=VALUE]... [--detector-set KEY=VALUE]... [--redis-url URL] [--profile-x10] [--keep]\n`);
    process.exit(0);
  }
  const int = (v: string | undefined, d: number, name: string): number => {
    if (v === undefined) return d;
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  const quick = values.quick;
  const routerOnly = values['router-only'];
  return {
    events: int(values.events, quick ? 100_000 : 1_000_000, 'events'),
    runs: int(values.runs, 3, 'runs'),
    quick,
    seed: int(values.seed, 42, 'seed'),
    live: !values['no-live'] && !routerOnly,
    liveRate: int(values['live-rate'], 2000, 'live-rate'),
    // At least 4 minutes: the generator plants attacks only where whole panes fit.
    liveSeconds: int(values['live-seconds'], 240, 'live-seconds'),
    liveAttacks: int(values['live-attacks'], 300, 'live-attacks'),
    flat: !values['no-flat'] && !routerOnly,
    profile: !values['no-profile'],
    throughput: !values['live-only'],
    detectorOnly: values['detector-only'],
    routerOnly,
    compareCli: values['compare-cli'] ?? null,
    profileX10: values['profile-x10'],
    routerSet: configSets(values['router-set'], 'router-set'),
    detectorSet: configSets(values['detector-set'], 'detector-set'),
    routerNodeArgs: nodeFlags(values['router-node-args']),
    detectorNodeArgs: nodeFlags(values['detector-node-args']),
    redisUrl: values['redis-url'] ?? null,
    keep: values.keep,
    // Backlog replays are out of order by about one fetch per raw partition (README, pitfalls):
    // the throughput runs use a lateness that covers it, so the detector does all the work.
    latenessMs: 600_000,
  };
}

// ---------------------------------------------------------------------------------------------
// Context

interface Ctx {
  opts: Options;
  runId: string;
  kafka: Kafka;
  admin: Admin;
  redis: Redis;
  redisUrl: string;
  privateRedis: boolean;
  logDir: string;
  profileDir: string;
  ruleKey: string;
  hopMs: number;
  windowMs: number;
  topics: Set<string>;
  groups: Set<string>;
}

interface StageRun {
  stage: 'noop-raw' | 'copy-raw' | 'router' | 'noop-keyed' | 'detector';
  label: string;
  run: number;
  actorsScale: number;
  topic: string;
  records: number;
  /** Seconds from the group being Stable to lag 0 (and, for the detector, all windows closed). */
  seconds: number;
  secondsToLagZero: number;
  rate: number;
  rateToLagZero: number;
  secondsFromSpawn: number;
  peakRssBytes: number;
  cpuSeconds: number;
  cpuUsPerRecord: number;
  outputTopic?: string;
  outputRecords?: number;
  counters?: Record<string, number>;
  redis?: {
    delta: RedisDelta;
    census: PaneCensus | null;
    sample: Pick<PaneSample, 'peakPairs' | 'usedMemoryAtPeak' | 'samples'>;
    bytesPerGroupPane: number;
    commandsPerEvent: number;
    scriptCallsPerEvent: number;
    readsPerEvent: number;
    redisCpuUsPerEvent: number;
  };
  proxy?: ProxyCounts & { roundTripsPerEvent: number; commandsSentPerEvent: number };
  profile?: string;
  logFile: string;
}

// ---------------------------------------------------------------------------------------------
// One worker run, measured from outside

async function measure(
  ctx: Ctx,
  w: Worker,
  groupId: string,
  topic: string,
  ends: Map<number, number>,
  extraDone?: () => Promise<boolean>,
): Promise<{ times: GroupTimes; peakRssBytes: number; cpuSeconds: number; counters: Map<string, number> | null }> {
  ctx.groups.add(groupId);
  try {
    const times = await watchGroup(ctx.admin, groupId, topic, ends, [w], { extraDone });
    const mem = memoryOf(w.pid);
    const cpuSeconds = cpuSecondsOf(w.pid);
    const counters = w.httpPort !== null ? await scrapeMetrics(w.httpPort).catch(() => null) : null;
    return { times, peakRssBytes: mem?.peakRss ?? Number.NaN, cpuSeconds, counters };
  } catch (err) {
    await w.stop(5000);
    throw err;
  }
}

function stageRun(
  base: Pick<StageRun, 'stage' | 'label' | 'run' | 'actorsScale' | 'topic' | 'records' | 'logFile'>,
  w: Worker,
  m: { times: GroupTimes; peakRssBytes: number; cpuSeconds: number },
): StageRun {
  const seconds = (m.times.tDone - m.times.tStable) / 1000;
  const secondsToLagZero = (m.times.tLagZero - m.times.tStable) / 1000;
  return {
    ...base,
    seconds,
    secondsToLagZero,
    rate: base.records / seconds,
    rateToLagZero: base.records / secondsToLagZero,
    secondsFromSpawn: (m.times.tDone - w.startedAt) / 1000,
    peakRssBytes: m.peakRssBytes,
    cpuSeconds: m.cpuSeconds,
    cpuUsPerRecord: (m.cpuSeconds * 1e6) / base.records,
  };
}

async function runNoop(ctx: Ctx, topic: string, label: string, run: number, actorsScale: number): Promise<StageRun> {
  const groupId = `${ctx.runId}-noop-${label}-r${run}`;
  const ends = await endOffsets(ctx.admin, topic);
  const w = spawnWorker({
    name: `noop-${label}-r${run}`,
    script: NOOP,
    env: {
      ...process.env,
      KADE_KAFKA_BROKERS: BROKERS.join(','),
      KADE_LOG_LEVEL: 'info',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
      BENCH_NOOP_TOPIC: topic,
      BENCH_NOOP_GROUP: groupId,
    },
    logDir: ctx.logDir,
  });
  const m = await measure(ctx, w, groupId, topic, ends);
  await w.stop();
  const r = stageRun({ stage: label.startsWith('raw') ? 'noop-raw' : 'noop-keyed', label, run, actorsScale, topic, records: total(ends), logFile: w.logFile }, w, m);
  log(`  no-op ${label} run ${run}: ${fmt(r.rate)} rec/s (${r.seconds.toFixed(1)} s)`);
  return r;
}

/**
 * The router's own stack without the routing: kafkajs consume-transform-produce through kade's
 * boundary (runBatchLoop, PartitionTransactions, sendChunked; bench/client-worker.ts, mode ctp)
 * with an identity transform, one transaction per input batch and partition, into a fresh
 * 6-partition topic. The router does this plus decoding, normalizing and Avro; it writes fewer
 * bytes (its keyed records are ~430 B of Avro, the raw events ~900 B of JSON).
 */
async function runCopy(ctx: Ctx, raw: LoadResult, run: number): Promise<StageRun> {
  const groupId = `${ctx.runId}-copy-r${run}`;
  const out = `${ctx.runId}.copy.r${run}`;
  await createTopic(ctx.admin, out, 6);
  ctx.topics.add(out);
  const ends = await endOffsets(ctx.admin, raw.topic);
  const w = spawnClientWorker(`copy-raw-r${run}`, BROKERS, ctx.logDir, {
    BENCH_CLIENT: 'kafkajs', BENCH_MODE: 'ctp', BENCH_TOPIC: raw.topic, BENCH_OUT_TOPIC: out, BENCH_GROUP: groupId,
  });
  const m = await measure(ctx, w, groupId, raw.topic, ends);
  await w.stop();
  const r = stageRun({ stage: 'copy-raw', label: 'raw', run, actorsScale: 1, topic: raw.topic, records: total(ends), logFile: w.logFile }, w, m);
  log(`  transactional copy run ${run}: ${fmt(r.rate)} rec/s (${r.seconds.toFixed(1)} s)`);
  return r;
}

async function runRouter(
  ctx: Ctx, raw: LoadResult, keyedTopic: string, label: string, run: number, actorsScale: number, profileName?: string, otherCli?: string,
): Promise<StageRun> {
  const groupId = `${ctx.runId}-router-${label}-r${run}`;
  await createTopic(ctx.admin, keyedTopic, 6);
  ctx.topics.add(keyedTopic);
  const port = await freePort();
  const config = benchConfig({
    'kafka.brokers': BROKERS,
    'topics.raw': raw.topic,
    'topics.keyed': keyedTopic,
    'topics.alerts': `${ctx.runId}.alerts.router`,
    'router.groupId': groupId,
    'detector.groupId': `${groupId}-unused`,
    'redis.url': ctx.redisUrl,
    'redis.keyPrefix': `${ctx.runId}-unused`,
    'http.port': port,
    'log.level': 'info',
    ...(otherCli === undefined ? ctx.opts.routerSet : {}),
  });
  ctx.topics.add(`${ctx.runId}.alerts.router`);
  ctx.topics.add(`${raw.topic}.dlq`);
  const ends = await endOffsets(ctx.admin, raw.topic);
  const w = spawnWorker({
    name: `router-${label}-r${run}${profileName ? '-profile' : ''}`,
    script: otherCli ?? CLI,
    args: ['run', '--role', 'router'],
    env: kadeEnv(config),
    nodeArgs: [
      ...(otherCli === undefined ? ctx.opts.routerNodeArgs : []),
      ...(profileName ? ['--cpu-prof', '--cpu-prof-dir', ctx.profileDir, '--cpu-prof-name', profileName] : []),
    ],
    logDir: ctx.logDir,
    httpPort: port,
  });
  const m = await measure(ctx, w, groupId, raw.topic, ends);
  const code = await w.stop();
  if (code !== 0) log(`  warning: router exited ${code}; log ${w.logFile}`);
  const out = await endOffsets(ctx.admin, keyedTopic);
  const r = stageRun({ stage: 'router', label, run, actorsScale, topic: raw.topic, records: total(ends), logFile: w.logFile }, w, m);
  r.outputTopic = keyedTopic;
  r.outputRecords = total(out);
  r.counters = {
    routed: metric(m.counters, 'kade_events_total', { stage: 'router', outcome: 'routed' }),
    filtered: metric(m.counters, 'kade_events_total', { stage: 'router', outcome: 'filtered' }),
    deadLettered: metric(m.counters, 'kade_events_total', { stage: 'router', outcome: 'dead_lettered' }),
  };
  if (profileName) r.profile = path.join(ctx.profileDir, profileName);
  log(`  router ${label} run ${run}: ${fmt(r.rate)} ev/s (${r.seconds.toFixed(1)} s), ${r.outputRecords} keyed records, peak RSS ${fmt(r.peakRssBytes / 2 ** 20)} MiB`);
  return r;
}

async function checkpointsClosed(ctx: Ctx, prefix: string, ends: Map<number, number>, own: { hgetall: number }, states: string[] = []): Promise<boolean> {
  const keys = new KeyBuilder(prefix, ctx.ruleKey);
  let closed = true;
  for (const [p, end] of ends) {
    if (end === 0) continue;
    let c = await ctx.redis.hgetall(keys.checkpoint(p));
    own.hgetall++;
    if (Object.keys(c).length === 0 && ctx.opts.compareCli !== null) {
      // A --compare-cli build may use an older key layout (before v3: no layout in the tag).
      for (const tag of [...Array.from({ length: STATE_LAYOUT - 3 }, (_, i) => `v${STATE_LAYOUT - 1 - i}:`), '']) {
        c = await ctx.redis.hgetall(`${prefix}:{${ctx.ruleKey}:${tag}p${p}}:ckpt`);
        own.hgetall++;
        if (Object.keys(c).length > 0) break;
      }
    }
    states.push(`p${p}: ${JSON.stringify(c)}`);
    if (c.streamTime === undefined || c.streamTime === '') closed = false;
    const lastEnd = Math.floor(Number(c.streamTime) / ctx.hopMs) * ctx.hopMs + ctx.windowMs;
    if (c.lastClosed === undefined || c.lastClosed === '' || Number(c.lastClosed) < lastEnd) closed = false;
  }
  return closed;
}

/** The detector's done condition, bounded: windows must close within 120 s of lag 0. */
function windowsClosedCheck(ctx: Ctx, prefix: string, ends: Map<number, number>, own: { hgetall: number }): () => Promise<boolean> {
  let first = 0;
  return async () => {
    if (first === 0) first = Date.now();
    const states: string[] = [];
    const ok = await checkpointsClosed(ctx, prefix, ends, own, states);
    if (!ok && Date.now() - first > 120_000) throw new Error(`windows not closed 120 s after lag 0; checkpoints ${states.join('; ')}`);
    return ok;
  };
}

async function runDetector(
  ctx: Ctx, keyedTopic: string, label: string, run: number, actorsScale: number, instrument?: { profileName: string }, otherCli?: string,
): Promise<StageRun> {
  const groupId = `${ctx.runId}-detector-${label}-r${run}${instrument ? '-profile' : ''}`;
  // A private Redis is flushed before each run: use kade's default prefix, so key names (part of
  // the memory per group-pane) are as long as in a default deployment.
  const prefix = ctx.privateRedis ? 'kade' : `${ctx.runId}-${label}-r${run}${instrument ? '-profile' : ''}`;
  const alerts = `${ctx.runId}.alerts.${label}.r${run}${instrument ? '.profile' : ''}`;
  ctx.topics.add(alerts);
  const ends = await endOffsets(ctx.admin, keyedTopic);
  const port = await freePort();
  const proxy = instrument ? await startCountingProxy(Number(new URL(ctx.redisUrl).port || 6379), new URL(ctx.redisUrl).hostname) : null;
  const redisUrl = proxy ? `redis://127.0.0.1:${proxy.port}` : ctx.redisUrl;
  const config = benchConfig({
    'kafka.brokers': BROKERS,
    'topics.raw': `${ctx.runId}.raw.unused`,
    'topics.keyed': keyedTopic,
    'topics.alerts': alerts,
    'router.groupId': `${groupId}-unused`,
    'detector.groupId': groupId,
    'detector.latenessMs': ctx.opts.latenessMs,
    'detector.idleTimeoutMs': 1000,
    'detector.tickMs': 100,
    'redis.url': redisUrl,
    'redis.keyPrefix': prefix,
    'http.port': port,
    'log.level': 'info',
    ...(otherCli === undefined ? ctx.opts.detectorSet : {}),
  });
  ctx.topics.add(`${ctx.runId}.raw.unused`);
  ctx.topics.add(`${ctx.runId}.raw.unused.dlq`);
  if (ctx.privateRedis) await ctx.redis.flushall();
  await sleep(200);
  const before = await redisSnapshot(ctx.redis);
  const own: Record<string, number> & { hgetall: number } = { hgetall: 0 };
  const w = spawnWorker({
    name: `detector-${label}-r${run}${instrument ? '-profile' : ''}`,
    script: otherCli ?? CLI,
    args: ['run', '--role', 'detector'],
    env: kadeEnv(config),
    nodeArgs: [
      ...(otherCli === undefined ? ctx.opts.detectorNodeArgs : []),
      ...(instrument ? ['--cpu-prof', '--cpu-prof-dir', ctx.profileDir, '--cpu-prof-name', instrument.profileName] : []),
    ],
    logDir: ctx.logDir,
    httpPort: port,
  });
  const sampler = paneSampler(ctx.redis, prefix, ctx.ruleKey, before.usedMemory);
  let m;
  try {
    m = await measure(ctx, w, groupId, keyedTopic, ends, windowsClosedCheck(ctx, prefix, ends, own));
  } catch (err) {
    await sampler.stop();
    await proxy?.close();
    throw err;
  }
  const sample = await sampler.stop();
  for (const [cmd, n] of Object.entries(sample.own)) own[cmd] = (own[cmd] ?? 0) + n;
  const after = await redisSnapshot(ctx.redis);
  const proxyCounts = proxy ? { ...proxy.counts } : null;
  const census = sample.census;
  const code = await w.stop();
  if (code !== 0) log(`  warning: detector exited ${code}; log ${w.logFile}`);
  await proxy?.close();
  const records = total(ends);
  const r = stageRun({ stage: 'detector', label, run, actorsScale, topic: keyedTopic, records, logFile: w.logFile }, w, m);
  // Round trips of the bench's own: one per HGETALL poll, the sampler's counted by it.
  const delta = redisDelta(before, after, own, own.hgetall + sample.reads);
  r.redis = {
    delta,
    census,
    sample: { peakPairs: sample.peakPairs, usedMemoryAtPeak: sample.usedMemoryAtPeak, samples: sample.samples },
    // Pairs and used_memory at the sample with the most pairs (retired panes are deleted).
    bytesPerGroupPane: sample.usedMemoryAtPeak / sample.peakPairs,
    commandsPerEvent: delta.totalCommands / records,
    scriptCallsPerEvent: delta.scriptCalls / records,
    readsPerEvent: delta.totalReads / records,
    redisCpuUsPerEvent: (delta.cpuSeconds * 1e6) / records,
  };
  if (proxyCounts) r.proxy = { ...proxyCounts, roundTripsPerEvent: proxyCounts.roundTrips / records, commandsSentPerEvent: proxyCounts.commands / records };
  r.counters = {
    applied: metric(m.counters, 'kade_events_total', { stage: 'detector', outcome: 'applied' }),
    late: metric(m.counters, 'kade_events_total', { stage: 'detector', outcome: 'late' }),
    alertsPublished: metric(m.counters, 'kade_alerts_total', { outcome: 'published' }),
    alertsSuppressed: metric(m.counters, 'kade_alerts_total', { outcome: 'suppressed' }),
    windowsClosed: metric(m.counters, 'kade_windows_closed_total'),
  };
  if (instrument) r.profile = path.join(ctx.profileDir, instrument.profileName);
  log(`  detector ${label} run ${run}: ${fmt(r.rate)} rec/s (${r.seconds.toFixed(1)} s; lag 0 after ${r.secondsToLagZero.toFixed(1)} s), `
    + `${fmt(r.redis.commandsPerEvent, 3)} cmds/rec, ${fmt(r.redis.bytesPerGroupPane)} B/group-pane at a peak of ${sample.peakPairs} group-panes, ${fmt(delta.usedMemory / 1024)} KiB held at the end, `
    + `late ${r.counters.late}, alerts ${r.counters.alertsPublished}${r.proxy ? `, ${fmt(r.proxy.roundTripsPerEvent, 4)} round trips/rec` : ''}`);
  if (ctx.privateRedis) await ctx.redis.flushall();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Alert latency at a steady live rate

interface LiveResult {
  rate: number;
  seconds: number;
  events: number;
  producedRate: number;
  maxReleaseDelayMs: number;
  latenessMs: number;
  idleTimeoutMs: number;
  expectedAlerts: number;
  receivedAlerts: number;
  /** Alerts whose window's watermark instant (end + lateness) fell while traffic was flowing. */
  streamClosed: number;
  latencyMs: { p50: number; p99: number; max: number; min: number };
  /** createdAt (detector built the alert) minus watermark instant. */
  decideMs: { p50: number; p99: number };
  /** Receive time minus createdAt: publish (acks=all) + delivery to a consumer. */
  publishMs: { p50: number; p99: number };
  idleClosed: { n: number; p50: number; max: number };
  /**
   * Where the time goes (windows closed by stream time), from the detector's checkpoint streamTime
   * polled every 50 ms: transit = first poll at which the alert's keyed partition's watermark
   * (streamTime - lateness) passed the window end, minus the watermark instant (router, keyed topic,
   * detector fetch and pane update); evaluate = createdAt - that poll (close, candidate evaluation,
   * alert values); publish = receive time - createdAt.
   */
  breakdownMs: { transit: { p50: number; p99: number }; evaluate: { p50: number; p99: number }; publish: { p50: number; p99: number }; n: number };
  /** Every (window, partition) closed during the traffic: checkpoint lastClosed seen (50 ms polls) - watermark instant. */
  windowCloseMs: { n: number; p50: number; p99: number; max: number };
  /** Distinct window ends among the stream-closed alerts. */
  distinctAlertWindows: number;
  /** Wall clock minus the detector's stream time, sampled every 50 ms over all partitions. */
  detectorStreamLagMs: { p50: number; p99: number };
  lagAtEnd: { router: number; detector: number };
  peakRssBytes: { router: number; detector: number };
  cpuPercent: { router: number; detector: number };
  late: number;
  samples: Array<{ windowEnd: number; partition: number; latencyMs: number; decideMs: number; transitMs: number; evaluateMs: number; kind: 'stream' | 'idle' }>;
}

async function groupLag(admin: Admin, groupId: string, topic: string): Promise<number> {
  const ends = await endOffsets(admin, topic);
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  let lag = 0;
  for (const t of res) for (const p of t.partitions) {
    const end = ends.get(p.partition) ?? 0;
    const c = Number(p.offset);
    lag += Math.max(0, end - (c < 0 ? 0 : c));
  }
  return lag;
}

async function waitStable(ctx: Ctx, groupId: string, workers: Worker[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const w of workers) if (w.child.exitCode !== null) throw new Error(`${w.name} exited early; log ${w.logFile}`);
    const g = (await ctx.admin.describeGroups([groupId])).groups[0];
    if (g !== undefined && g.state === 'Stable' && g.members.length > 0) return;
    if (Date.now() > deadline) throw new Error(`group ${groupId} did not become stable`);
    await sleep(100);
  }
}

/**
 * Probe attackers for the live run: in every whole pane of the run, `perPane` fresh actors each
 * make 24 requests (8 URIs on 5 resources, allowed and forbidden) = one alert each, for the
 * window ending at the pane's end, so that every window closed during the run has alerts (the
 * generator plants its attacks where whole patterns fit, which in a few minutes is one pane).
 */
function probeEvents(startMs: number, endMs: number, hopMs: number, latenessMs: number, perPane: number): Array<{ t: number; cluster: string; event: Record<string, unknown> }> {
  const out: Array<{ t: number; cluster: string; event: Record<string, unknown> }> = [];
  const targets = [
    ['pods', ''], ['pods', '/probe-0'], ['secrets', ''], ['secrets', '/db-password'],
    ['configmaps', ''], ['services', ''], ['serviceaccounts', ''], ['endpoints', '/kubernetes'],
  ];
  const iso = (ms: number): string => `${new Date(ms).toISOString().slice(0, 23)}000Z`;
  let k = 0;
  // Every pane with at least 20 s of traffic in it whose first window closes (end + lateness)
  // at least 10 s before the traffic stops.
  for (let pane = Math.floor(startMs / hopMs) * hopMs; pane + hopMs + latenessMs <= endMs - 10_000; pane += hopMs) {
    const from = Math.max(pane + 5000, startMs + 1000);
    const to = pane + hopMs - 5000;
    if (to - from < 20_000) continue;
    for (let j = 0; j < perPane; j++) {
      const username = `system:serviceaccount:kade-bench:probe-${k}-${j}`;
      const ip = `198.18.${k % 256}.${j + 1}`;
      for (let i = 0; i < 24; i++) {
        const t = from + Math.floor(((to - from) * i) / 24) + j * 37;
        const [resource, name] = targets[i % targets.length];
        const forbid = i % 3 === 0;
        out.push({
          t,
          cluster: 'cluster-probe',
          event: {
            kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: `probe-${k}-${j}-${i}`,
            stage: 'ResponseComplete', requestURI: `/api/v1/namespaces/probe/${resource}${name}`, verb: name === '' ? 'list' : 'get',
            user: { username, groups: ['system:serviceaccounts', 'system:authenticated'] },
            sourceIPs: [ip], userAgent: 'kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819',
            objectRef: { resource, namespace: 'probe', ...(name === '' ? {} : { name: name.slice(1) }), apiVersion: 'v1' },
            responseStatus: { metadata: {}, code: forbid ? 403 : 200 },
            requestReceivedTimestamp: iso(t), stageTimestamp: iso(t + 3),
            annotations: { 'authorization.k8s.io/decision': forbid ? 'forbid' : 'allow', 'authorization.k8s.io/reason': '' },
          },
        });
      }
    }
    k++;
  }
  return out.sort((a, b) => a.t - b.t);
}

async function runLive(ctx: Ctx): Promise<LiveResult> {
  const { liveRate: rate, liveSeconds: seconds, seed } = ctx.opts;
  const id = `${ctx.runId}.live`;
  const raw = `${id}.raw`;
  const keyed = `${id}.keyed`;
  const alertsTopic = `${id}.alerts`;
  for (const t of [raw, keyed, alertsTopic, `${raw}.dlq`]) ctx.topics.add(t);
  await createTopic(ctx.admin, raw, 3);
  await createTopic(ctx.admin, keyed, 6);
  await createTopic(ctx.admin, alertsTopic, 1);
  const latenessMs = 30_000;
  const idleTimeoutMs = 2000;
  const livePrefix = ctx.privateRedis ? 'kade' : `${ctx.runId}-live`;
  const routerGroup = `${ctx.runId}-live-router`;
  const detectorGroup = `${ctx.runId}-live-detector`;
  ctx.groups.add(routerGroup);
  ctx.groups.add(detectorGroup);
  const base = {
    'kafka.brokers': BROKERS,
    'topics.raw': raw,
    'topics.keyed': keyed,
    'topics.alerts': alertsTopic,
    'router.groupId': routerGroup,
    'detector.groupId': detectorGroup,
    'detector.latenessMs': latenessMs,
    'detector.idleTimeoutMs': idleTimeoutMs,
    'detector.tickMs': 200,
    'redis.url': ctx.redisUrl,
    'redis.keyPrefix': livePrefix,
    'log.level': 'info',
  };
  if (ctx.privateRedis) await ctx.redis.flushall();
  const routerPort = await freePort();
  const detectorPort = await freePort();
  const router = spawnWorker({ name: 'live-router', script: CLI, args: ['run', '--role', 'router'], env: kadeEnv(benchConfig({ ...base, 'http.port': routerPort })), logDir: ctx.logDir, httpPort: routerPort });
  const detector = spawnWorker({ name: 'live-detector', script: CLI, args: ['run', '--role', 'detector'], env: kadeEnv(benchConfig({ ...base, 'http.port': detectorPort })), logDir: ctx.logDir, httpPort: detectorPort });
  const workers = [router, detector];
  const received: Array<{ at: number; alert: Alert }> = [];
  const codec = new AlertCodec();
  const readerGroup = `${ctx.runId}-live-alerts-reader`;
  ctx.groups.add(readerGroup);
  const reader = ctx.kafka.consumer({ groupId: readerGroup, maxWaitTimeInMs: 100 });
  const producer = ctx.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
  try {
    await waitStable(ctx, routerGroup, workers);
    await waitStable(ctx, detectorGroup, workers);
    await reader.connect();
    await reader.subscribe({ topic: alertsTopic, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const at = Date.now();
        if (message.value === null) return;
        const d = codec.decode(message.value, headerString(message.headers, 'content-type'));
        if (d.alert) received.push({ at, alert: d.alert });
      },
    });
    await producer.connect();
    const events = rate * seconds;
    // The generator plants attacks only where whole panes fit in the stream, so how many fit
    // depends on where the start falls in its pane: at 2000 ev/s for 240 s, 151 alerts, or none
    // when the start falls 1-5 s after a minute (this made the expected count vary between runs).
    // Start at the whole second, 2 to 12 s from now, that fits the most.
    const planFrom = (startMs: number) => ({ seed: seed + 1, events, eventsPerSecond: rate, startMs, attacks: ctx.opts.liveAttacks });
    const first = Math.ceil(Date.now() / 1000) * 1000 + 2000;
    const alertEnds = (startMs: number) => planAttacks(planFrom(startMs)).flatMap((a) => a.expected.flatMap((g) => g.alertWindowEnds));
    let startMs = first;
    let expected = alertEnds(first);
    for (let s = first + 1000; s <= first + 10_000; s += 1000) {
      const ends = alertEnds(s);
      if (ends.length > expected.length) {
        expected = ends;
        startMs = s;
      }
    }
    const gen = planFrom(startMs);
    const probes = probeEvents(startMs, startMs + seconds * 1000, ctx.hopMs, latenessMs, 6);
    const probeAlerts = new Set(probes.map((p) => ((p.event.user as { username: string }).username))).size;
    for (let i = 0; i < probeAlerts; i++) expected.push(0);
    log(`  live: ${events} events at ${rate} ev/s from ${new Date(startMs).toISOString()} + ${probes.length} probe events; ${expected.length} alerts expected (${probeAlerts} from probes)`);
    const cpu0 = { router: cpuSecondsOf(router.pid), detector: cpuSecondsOf(detector.pid), t: Date.now() };
    // Probe: the detector's per-partition stream time, as it saves it with every batch.
    const ckpt = new KeyBuilder(livePrefix, ctx.ruleKey);
    const timeline: Array<Array<{ t: number; streamTime: number }>> = Array.from({ length: 6 }, () => []);
    const closedLine: Array<Array<{ t: number; lastClosed: number }>> = Array.from({ length: 6 }, () => []);
    const streamLag: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const pipe = ctx.redis.pipeline();
        for (let p = 0; p < 6; p++) pipe.hmget(ckpt.checkpoint(p), 'streamTime', 'lastClosed');
        const r = (await pipe.exec()) ?? [];
        const t = Date.now();
        r.forEach(([, pair], p) => {
          const [v, lc] = (pair ?? [null, null]) as Array<string | null>;
          if (typeof lc === 'string' && lc !== '') {
            const cl = closedLine[p];
            if (cl.length === 0 || cl[cl.length - 1].lastClosed !== Number(lc)) cl.push({ t, lastClosed: Number(lc) });
          }
          if (typeof v !== 'string' || v === '') return;
          const st = Number(v);
          const line = timeline[p];
          if (line.length === 0 || line[line.length - 1].streamTime !== st) line.push({ t, streamTime: st });
          if (t < startMs + seconds * 1000) streamLag.push(t - st);
        });
        await sleep(50);
      }
    })();
    const it = generateAuditStream(gen)[Symbol.iterator]();
    let next = it.next();
    let release = 0;
    let queue: Message[] = [];
    let sending: Promise<void> | null = null;
    let sendError: unknown = null;
    let maxReleaseDelay = 0;
    let produced = 0;
    const pump = async (): Promise<void> => {
      while (queue.length > 0) {
        const b = queue;
        queue = [];
        await sendChunked(producer, [{ topic: raw, messages: b }], { acks: -1 });
      }
    };
    let probeIdx = 0;
    while (!next.done) {
      const now = Date.now();
      while (probeIdx < probes.length && probes[probeIdx].t <= now) {
        const pe = probes[probeIdx++];
        queue.push({ key: rawKey(pe.event), value: JSON.stringify(pe.event), headers: { 'kade.namespace': pe.cluster } });
        produced++;
      }
      while (!next.done) {
        const ev = next.value;
        const t = Date.parse((ev.event as { requestReceivedTimestamp: string }).requestReceivedTimestamp);
        // Release in event-time order of the stream: a jittered (older) event goes with its tick.
        const at = Math.max(release, t);
        if (at > now) break;
        release = at;
        maxReleaseDelay = Math.max(maxReleaseDelay, now - at);
        queue.push({ key: rawKey(ev.event), value: JSON.stringify(ev.event), headers: { 'kade.namespace': ev.cluster } });
        produced++;
        next = it.next();
      }
      if (sendError !== null) throw sendError;
      if (sending === null && queue.length > 0) {
        sending = pump().catch((e: unknown) => { sendError = e; }).finally(() => { sending = null; });
      }
      if (workers.some((w) => w.child.exitCode !== null)) throw new Error('a live worker exited early');
      await sleep(10);
    }
    while (sending !== null) await sending;
    if (queue.length > 0) await pump();
    const endMs = Date.now();
    const lagAtEnd = { router: await groupLag(ctx.admin, routerGroup, raw), detector: await groupLag(ctx.admin, detectorGroup, keyed) };
    log(`  live: produced ${produced} events in ${((endMs - startMs) / 1000).toFixed(1)} s; lag at end: router ${lagAtEnd.router}, detector ${lagAtEnd.detector}`);
    // Windows whose watermark instant falls after the traffic stops close by idleness: wait for them.
    const lastEnd = Math.max(0, ...expected);
    const deadline = Math.max(endMs, lastEnd + latenessMs) + idleTimeoutMs + 15_000;
    while (Date.now() < deadline && received.length < expected.length) await sleep(200);
    const cpu1 = { router: cpuSecondsOf(router.pid), detector: cpuSecondsOf(detector.pid), t: Date.now() };
    const memR = memoryOf(router.pid);
    const memD = memoryOf(detector.pid);
    const counters = await scrapeMetrics(detectorPort).catch(() => null);
    probing = false;
    await probe;
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0, offlineReplicas: [] }));
    const samples = received.map(({ at, alert }) => {
      const wmAt = alert.windowEnd + latenessMs;
      const p = partitioner({ topic: keyed, partitionMetadata, message: { key: groupKafkaKey(alert.groupValues), value: null } });
      const seen = timeline[p].find((x) => x.streamTime - latenessMs >= alert.windowEnd)?.t ?? Number.NaN;
      return {
        windowEnd: alert.windowEnd,
        latencyMs: at - wmAt,
        decideMs: alert.createdAt - wmAt,
        publishMs: at - alert.createdAt,
        transitMs: seen - wmAt,
        evaluateMs: alert.createdAt - seen,
        partition: p,
        kind: (wmAt <= endMs - 1000 ? 'stream' : 'idle') as 'stream' | 'idle',
      };
    });
    // Every window closed during the traffic, on every partition: first poll showing lastClosed >= end.
    const closeLat: number[] = [];
    for (let e = Math.ceil(startMs / ctx.hopMs) * ctx.hopMs + ctx.hopMs; e + latenessMs <= endMs - 1000; e += ctx.hopMs) {
      for (let p = 0; p < 6; p++) {
        const seenAt = closedLine[p].find((x) => x.lastClosed >= e)?.t;
        if (seenAt !== undefined) closeLat.push(seenAt - (e + latenessMs));
      }
    }
    const stream = samples.filter((s) => s.kind === 'stream');
    const idle = samples.filter((s) => s.kind === 'idle');
    const lat = stream.map((s) => s.latencyMs);
    const wall = (cpu1.t - cpu0.t) / 1000;
    return {
      rate,
      seconds,
      events: produced,
      producedRate: produced / ((endMs - startMs) / 1000),
      maxReleaseDelayMs: maxReleaseDelay,
      latenessMs,
      idleTimeoutMs,
      expectedAlerts: expected.length,
      receivedAlerts: received.length,
      streamClosed: stream.length,
      latencyMs: { p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat), min: Math.min(...lat) },
      decideMs: { p50: percentile(stream.map((s) => s.decideMs), 50), p99: percentile(stream.map((s) => s.decideMs), 99) },
      publishMs: { p50: percentile(stream.map((s) => s.publishMs), 50), p99: percentile(stream.map((s) => s.publishMs), 99) },
      breakdownMs: {
        transit: { p50: percentile(stream.map((x) => x.transitMs), 50), p99: percentile(stream.map((x) => x.transitMs), 99) },
        evaluate: { p50: percentile(stream.map((x) => x.evaluateMs), 50), p99: percentile(stream.map((x) => x.evaluateMs), 99) },
        publish: { p50: percentile(stream.map((x) => x.publishMs), 50), p99: percentile(stream.map((x) => x.publishMs), 99) },
        n: stream.filter((x) => Number.isFinite(x.transitMs)).length,
      },
      detectorStreamLagMs: { p50: percentile(streamLag, 50), p99: percentile(streamLag, 99) },
      windowCloseMs: { n: closeLat.length, p50: percentile(closeLat, 50), p99: percentile(closeLat, 99), max: closeLat.length > 0 ? Math.max(...closeLat) : Number.NaN },
      distinctAlertWindows: new Set(stream.map((x) => x.windowEnd)).size,
      idleClosed: { n: idle.length, p50: percentile(idle.map((s) => s.latencyMs), 50), max: idle.length > 0 ? Math.max(...idle.map((s) => s.latencyMs)) : Number.NaN },
      lagAtEnd,
      peakRssBytes: { router: memR?.peakRss ?? Number.NaN, detector: memD?.peakRss ?? Number.NaN },
      cpuPercent: { router: ((cpu1.router - cpu0.router) / wall) * 100, detector: ((cpu1.detector - cpu0.detector) / wall) * 100 },
      late: metric(counters, 'kade_events_total', { stage: 'detector', outcome: 'late' }),
      samples: samples.map(({ windowEnd, partition, latencyMs, decideMs, transitMs, evaluateMs, kind }) => ({ windowEnd, partition, latencyMs, decideMs, transitMs, evaluateMs, kind })),
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    await reader.disconnect().catch(() => undefined);
    for (const w of workers) await w.stop();
    if (ctx.privateRedis) await ctx.redis.flushall();
  }
}

// ---------------------------------------------------------------------------------------------
// Summary, targets, output

class SkipThroughput extends Error {}

interface Target {
  name: string;
  target: string;
  value: string;
  pass: boolean | null;
  margin: string;
}

function pairedRatio(a: StageRun[], b: StageRun[]): number {
  const n = Math.min(a.length, b.length);
  const r: number[] = [];
  for (let i = 0; i < n; i++) r.push(a[i].rate / b[i].rate);
  return median(r);
}

function med(runs: StageRun[], f: (r: StageRun) => number): number {
  return median(runs.map(f));
}

function keepProfile(file: string | undefined): { file: string | null; bytes: number } {
  if (file === undefined || !existsSync(file)) return { file: null, bytes: 0 };
  const bytes = statSync(file).size;
  if (bytes >= 5 * 2 ** 20) {
    rmSync(file);
    return { file: null, bytes };
  }
  return { file: path.relative(packageRoot(), file), bytes };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const runId = `kadebench-${Date.now().toString(36)}`;
  const root = packageRoot();
  const logDir = path.join(root, 'bench-results', 'logs', stamp);
  // docs/profiles holds the profiles of the run docs/benchmarks.md describes: a one-stage run,
  // which leaves that file alone, keeps its profiles with its results.
  const profileDir = opts.routerOnly || opts.detectorOnly ? path.join(root, 'bench-results', 'profiles', stamp) : path.join(root, 'docs', 'profiles');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(profileDir, { recursive: true });
  const machine = machineInfo();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  log(`${command}: ${opts.events} events, ${opts.runs} runs; ${machine.nproc} cores, load ${machine.loadAvgAtStart.join(' ')}; logs in ${path.relative(root, logDir)}`);

  let redisInstance: RedisInstance | null = null;
  let redisUrl = opts.redisUrl;
  if (redisUrl === null) {
    redisInstance = await startRedisInstance();
    redisUrl = redisInstance.url;
    log(`private redis-server on ${redisUrl} (same binary and persistence settings as the shared one: no RDB, no AOF)`);
  }
  const kafka = testKafka('kade-bench');
  const admin = kafka.admin();
  await admin.connect();
  const redis = new Redis(redisUrl);
  const plan = loadRules('')[0];
  const ctx: Ctx = {
    opts, runId, kafka, admin, redis, redisUrl, privateRedis: redisInstance !== null, logDir, profileDir,
    ruleKey: plan.plan.stateKey, hopMs: plan.plan.window.hopMs, windowMs: plan.plan.window.sizeMs,
    topics: new Set(), groups: new Set(),
  };
  const runs = {
    noopRaw: [] as StageRun[], copyRaw: [] as StageRun[], router: [] as StageRun[], router10: [] as StageRun[],
    noopKeyed: [] as StageRun[], detector: [] as StageRun[], detector10: [] as StageRun[], routerCompare: [] as StageRun[], detectorCompare: [] as StageRun[], detectorCompare10: [] as StageRun[],
  };
  let raw1: LoadResult | null = null;
  let raw10: LoadResult | null = null;
  let live: LiveResult | null = null;
  let profRouter: StageRun | null = null;
  let profDetector: StageRun | null = null;
  const profiles: Record<string, ProfileSummary & { kept: string | null; bytes: number }> = {};
  const errors: string[] = [];
  try {
    if (!opts.throughput) throw new SkipThroughput();
    // 1. The stream, loaded once (and its 10x-actors twin for the flat-cost runs).
    const gen = { seed: opts.seed, events: opts.events, attacks: 60 };
    log(`loading ${opts.events} generated events into ${runId}.raw`);
    ctx.topics.add(`${runId}.raw`);
    raw1 = await loadRawTopic(kafka, admin, `${runId}.raw`, { ...gen, actorsScale: 1 });
    log(`  ${raw1.events} events, ${fmt(raw1.bytes / 2 ** 20)} MiB in ${raw1.seconds.toFixed(1)} s`);
    if (opts.flat) {
      ctx.topics.add(`${runId}.raw10`);
      raw10 = await loadRawTopic(kafka, admin, `${runId}.raw10`, { ...gen, actorsScale: 10 });
      log(`  10x actors: ${raw10.events} events, ${fmt(raw10.bytes / 2 ** 20)} MiB in ${raw10.seconds.toFixed(1)} s`);
    }

    // 2. Router alone on the pre-filled raw topic, next to the no-op consumer on the same topic.
    for (let i = 1; i <= (opts.detectorOnly ? 1 : opts.runs); i++) {
      log(`router phase, run ${i}/${opts.runs}`);
      if (!opts.detectorOnly) runs.noopRaw.push(await runNoop(ctx, raw1.topic, 'raw', i, 1));
      if (!opts.detectorOnly) runs.copyRaw.push(await runCopy(ctx, raw1, i));
      runs.router.push(await runRouter(ctx, raw1, `${runId}.keyed.r${i}`, 'x1', i, 1));
      if (raw10) runs.router10.push(await runRouter(ctx, raw10, `${runId}.keyed10.r${i}`, 'x10', i, 10));
      if (opts.routerOnly && opts.compareCli !== null) {
        runs.routerCompare.push(await runRouter(ctx, raw1, `${runId}.keyed.cmp.r${i}`, 'cmp', i, 1, undefined, opts.compareCli));
      }
    }
    const keyed1 = runs.router[0].outputTopic as string;
    const keyed10 = runs.router10[0]?.outputTopic;

    // 3. Detector alone on the pre-filled keyed topic, next to the no-op consumer on it.
    for (let i = 1; i <= (opts.routerOnly ? 0 : opts.runs); i++) {
      log(`detector phase, run ${i}/${opts.runs}`);
      runs.noopKeyed.push(await runNoop(ctx, keyed1, 'keyed', i, 1));
      runs.detector.push(await runDetector(ctx, keyed1, 'x1', i, 1));
      if (opts.detectorOnly && opts.compareCli !== null) {
        runs.detectorCompare.push(await runDetector(ctx, keyed1, 'cmp', i, 1, undefined, opts.compareCli));
      }
      if (keyed10) runs.detector10.push(await runDetector(ctx, keyed10, 'x10', i, 10));
      if (keyed10 && opts.detectorOnly && opts.compareCli !== null) {
        runs.detectorCompare10.push(await runDetector(ctx, keyed10, 'cmp10', i, 10, undefined, opts.compareCli));
      }
    }

    // 4. CPU profiles (separate runs, not part of the medians); the detector's Redis traffic goes
    // through a counting proxy to count round trips.
    if (opts.profile) {
      log('profiling runs (router and detector with --cpu-prof; detector behind a counting Redis proxy)');
      for (const f of readdirSync(profileDir)) if (f.endsWith('.cpuprofile')) rmSync(path.join(profileDir, f));
      const x10 = opts.profileX10 && raw10 !== null && keyed10 !== undefined;
      if (opts.profileX10 && !x10) throw new Error('--profile-x10 needs the flat-cost runs (no --no-flat)');
      if (!opts.detectorOnly) profRouter = await runRouter(ctx, x10 ? raw10! : raw1, `${runId}.keyed.profile`, x10 ? 'x10' : 'x1', 0, x10 ? 10 : 1, 'router.cpuprofile.tmp');
      if (!opts.routerOnly) profDetector = await runDetector(ctx, x10 ? keyed10! : keyed1, x10 ? 'x10' : 'x1', 0, x10 ? 10 : 1, { profileName: 'detector.cpuprofile.tmp' });
      for (const [role, r] of [['router', profRouter], ['detector', profDetector]] as const) {
        const tmp = r?.profile;
        if (tmp === undefined || !existsSync(tmp)) continue;
        const final = path.join(profileDir, `${role}.cpuprofile`);
        renameSync(tmp, final);
        // The measured interval only (group Stable to done), not the start-up and shutdown.
        const s = summarizeProfile(final, 15, r === null ? undefined : { fromMs: (r.secondsFromSpawn - r.seconds) * 1000, toMs: r.secondsFromSpawn * 1000 });
        const kept = keepProfile(final);
        profiles[role] = { ...s, file: path.relative(root, final), kept: kept.file, bytes: kept.bytes };
      }
    }

  } catch (err) {
    if (!(err instanceof SkipThroughput)) {
      errors.push((err as Error).stack ?? String(err));
      log(`FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }
  try {
    // 5. Alert latency at a steady live rate.
    if (opts.live && !opts.detectorOnly && errors.length === 0) {
      log(`live run: ${opts.liveRate} ev/s for ${opts.liveSeconds} s, router + detector`);
      live = await runLive(ctx);
      log(`  live: ${live.receivedAlerts}/${live.expectedAlerts} alerts; latency p50 ${fmt(live.latencyMs.p50)} ms, p99 ${fmt(live.latencyMs.p99)} ms over ${live.streamClosed}`);
    }
  } catch (err) {
    errors.push((err as Error).stack ?? String(err));
    log(`FAILED: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (!opts.keep) {
      await deleteTopicsQuietly(admin, [...ctx.topics]);
      await deleteGroupsQuietly(admin, [...ctx.groups]);
    }
    await admin.disconnect();
    await redis.quit();
    await redisInstance?.stop();
  }

  // ------------------------------------------------------------------ summary
  const s = {
    noopRawRate: med(runs.noopRaw, (r) => r.rate),
    routerRate: med(runs.router, (r) => r.rate),
    routerRatio: pairedRatio(runs.router, runs.noopRaw),
    copyRawRate: med(runs.copyRaw, (r) => r.rate),
    copyRatio: pairedRatio(runs.copyRaw, runs.noopRaw),
    routerToCopy: pairedRatio(runs.router, runs.copyRaw),
    noopKeyedRate: med(runs.noopKeyed, (r) => r.rate),
    detectorRate: med(runs.detector, (r) => r.rate),
    detectorRateToLagZero: med(runs.detector, (r) => r.rateToLagZero),
    detectorRatio: pairedRatio(runs.detector, runs.noopKeyed),
    detectorRatioToLagZero: median(runs.detector.map((r, i) => r.rateToLagZero / (runs.noopKeyed[i]?.rate ?? Number.NaN))),
    commandsPerEvent: med(runs.detector, (r) => r.redis?.commandsPerEvent ?? Number.NaN),
    scriptCallsPerEvent: med(runs.detector, (r) => r.redis?.scriptCallsPerEvent ?? Number.NaN),
    readsPerEvent: med(runs.detector, (r) => r.redis?.readsPerEvent ?? Number.NaN),
    roundTripsPerEvent: profDetector?.proxy?.roundTripsPerEvent ?? Number.NaN,
    commandsSentPerEvent: profDetector?.proxy?.commandsSentPerEvent ?? Number.NaN,
    bytesPerGroupPane: med(runs.detector, (r) => r.redis?.bytesPerGroupPane ?? Number.NaN),
    sampledBytesPerGroupPane: med(runs.detector, (r) => r.redis?.census?.sampledBytesPerGroupPane ?? Number.NaN),
    groupPanes: med(runs.detector, (r) => r.redis?.sample.peakPairs ?? Number.NaN),
    redisCpuUsPerEvent: med(runs.detector, (r) => r.redis?.redisCpuUsPerEvent ?? Number.NaN),
    routerPeakRss: Math.max(...runs.router.map((r) => r.peakRssBytes)),
    detectorPeakRss: Math.max(...runs.detector.map((r) => r.peakRssBytes)),
    noopPeakRss: Math.max(...[...runs.noopRaw, ...runs.noopKeyed].map((r) => r.peakRssBytes)),
    routerCpuUs: med(runs.router, (r) => r.cpuUsPerRecord),
    detectorCpuUs: med(runs.detector, (r) => r.cpuUsPerRecord),
    noopRawCpuUs: med(runs.noopRaw, (r) => r.cpuUsPerRecord),
    noopKeyedCpuUs: med(runs.noopKeyed, (r) => r.cpuUsPerRecord),
    router10Rate: med(runs.router10, (r) => r.rate),
    detector10Rate: med(runs.detector10, (r) => r.rate),
    flatRouter: pairedRatio(runs.router10, runs.router),
    flatDetector: pairedRatio(runs.detector10, runs.detector),
    bytesPerGroupPane10: med(runs.detector10, (r) => r.redis?.bytesPerGroupPane ?? Number.NaN),
    retainedBytes: med(runs.detector, (r) => r.redis?.delta.usedMemory ?? Number.NaN),
    retainedBytesCompare: med(runs.detectorCompare, (r) => r.redis?.delta.usedMemory ?? Number.NaN),
    commandsPerEvent10: med(runs.detector10, (r) => r.redis?.commandsPerEvent ?? Number.NaN),
    keyedRecords: runs.router[0]?.outputRecords ?? Number.NaN,
    keyedRecords10: runs.router10[0]?.outputRecords ?? Number.NaN,
    late: med(runs.detector, (r) => r.counters?.late ?? Number.NaN),
    alerts: med(runs.detector, (r) => r.counters?.alertsPublished ?? Number.NaN),
  };
  const paneInfo = runs.detector[0]?.redis?.census;
  const fieldNames = new Map(plan.fields.map((f) => [String(f.index), f.accessor.name]));
  const fieldRows: string[][] = Object.entries(paneInfo?.fieldShare ?? {})
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([idx, v]) => {
      const f = plan.fields.find((x) => String(x.index) === idx);
      const use = f ? [f.needDistinct ? 'count_distinct' : '', f.needValues && !plan.valuesFromTopic ? 'values' : ''].filter(Boolean).join(' + ')
        + (f.hashed ? ' (short form)' : '')
        : idx === 'record offsets' ? 'values (read back)' : '';
      return [idx === 'group key' || idx === 'record offsets' ? idx : `${idx}: ${fieldNames.get(idx) ?? '?'}`, use, fmt(v.members, 2), fmt(v.bytes, 0)];
    });
  const d1 = runs.detector[0];
  const commandRows: string[][] = d1?.redis
    ? Object.entries(d1.redis.delta.calls).sort((a, b) => b[1] - a[1]).slice(0, 16)
      .map(([cmd, n]) => [cmd, fmt(n), fmt(n / d1.records, 4)])
    : [];
  const pct = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%` : '-');
  const rtValue = Number.isFinite(s.roundTripsPerEvent) ? s.roundTripsPerEvent : s.readsPerEvent;
  const flatWorst = Math.max(Math.abs(1 - s.flatRouter), Math.abs(1 - s.flatDetector));
  const targets: Target[] = [
    { name: 'detector rate / no-op consumer (keyed topic)', target: '>= 0.70', value: fmt(s.detectorRatio, 2), pass: Number.isFinite(s.detectorRatio) ? s.detectorRatio >= 0.7 : null, margin: pct(s.detectorRatio / 0.7 - 1) },
    { name: 'router rate / no-op consumer (raw topic)', target: '>= 0.50', value: fmt(s.routerRatio, 2), pass: Number.isFinite(s.routerRatio) ? s.routerRatio >= 0.5 : null, margin: pct(s.routerRatio / 0.5 - 1) },
    {
      name: `Redis round trips per keyed record${Number.isFinite(s.roundTripsPerEvent) ? ' (counting proxy)' : ' (upper bound: reads)'}`,
      target: '<= 0.05', value: fmt(rtValue, 4), pass: Number.isFinite(rtValue) ? rtValue <= 0.05 : null, margin: pct(1 - rtValue / 0.05),
    },
    { name: 'p99 alert latency after the watermark', target: '<= 1000 ms', value: live ? `${fmt(live.latencyMs.p99)} ms` : '-', pass: live && Number.isFinite(live.latencyMs.p99) ? live.latencyMs.p99 <= 1000 : null, margin: live ? pct(1 - live.latencyMs.p99 / 1000) : '-' },
    { name: 'Redis memory per (group, pane)', target: '<= 300 B', value: `${fmt(s.bytesPerGroupPane)} B`, pass: Number.isFinite(s.bytesPerGroupPane) ? s.bytesPerGroupPane <= 300 : null, margin: pct(1 - s.bytesPerGroupPane / 300) },
    {
      name: 'flat cost: 10x actors, events/s change (router; detector)', target: '< 20%',
      value: `${pct(s.flatRouter - 1)}; ${pct(s.flatDetector - 1)}`, pass: Number.isFinite(flatWorst) ? flatWorst < 0.2 : null, margin: pct(1 - flatWorst / 0.2),
    },
  ];

  const mib = (b: number): string => `${fmt(b / 2 ** 20)} MiB`;
  const range = (rs: StageRun[]): string => (rs.length === 0 ? '' : `${fmt(Math.min(...rs.map((r) => r.rate)))} - ${fmt(Math.max(...rs.map((r) => r.rate)))}`);
  const rows: string[][] = [
    ['no-op consumer, raw topic', `${fmt(s.noopRawRate)} rec/s`, range(runs.noopRaw), '1.00', fmt(s.noopRawCpuUs, 1), mib(s.noopPeakRss)],
    ['transactional copy, raw topic (identity: the router\'s stack)', `${fmt(s.copyRawRate)} rec/s`, range(runs.copyRaw), fmt(s.copyRatio, 2), fmt(med(runs.copyRaw, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.copyRaw.map((r) => r.peakRssBytes)))],
    ['router (raw -> keyed)', `${fmt(s.routerRate)} ev/s`, range(runs.router), `${fmt(s.routerRatio, 2)} (${fmt(s.routerToCopy, 2)} x copy)`, fmt(s.routerCpuUs, 1), mib(s.routerPeakRss)],
    ['no-op consumer, keyed topic', `${fmt(s.noopKeyedRate)} rec/s`, range(runs.noopKeyed), '1.00', fmt(s.noopKeyedCpuUs, 1), mib(s.noopPeakRss)],
    ['detector (to lag 0 + windows closed)', `${fmt(s.detectorRate)} rec/s`, range(runs.detector), fmt(s.detectorRatio, 2), fmt(s.detectorCpuUs, 1), mib(s.detectorPeakRss)],
    ['detector (to lag 0 only)', `${fmt(s.detectorRateToLagZero)} rec/s`, '', fmt(s.detectorRatioToLagZero, 2), '', ''],
    ['router, 10x actors', `${fmt(s.router10Rate)} ev/s`, range(runs.router10), `${fmt(s.flatRouter, 2)} x router`, fmt(med(runs.router10, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.router10.map((r) => r.peakRssBytes)))],
    ...(runs.routerCompare.length > 0 ? [[
      `router of ${opts.compareCli}`, `${fmt(med(runs.routerCompare, (r) => r.rate))} ev/s`, range(runs.routerCompare),
      `${fmt(pairedRatio(runs.routerCompare, runs.noopRaw), 2)} (this build / it: ${fmt(pairedRatio(runs.router, runs.routerCompare), 2)})`,
      fmt(med(runs.routerCompare, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.routerCompare.map((r) => r.peakRssBytes))),
    ]] : []),
    ...(runs.detectorCompare.length > 0 ? [[
      `detector of ${opts.compareCli}`, `${fmt(med(runs.detectorCompare, (r) => r.rate))} rec/s`, range(runs.detectorCompare),
      `${fmt(pairedRatio(runs.detectorCompare, runs.noopKeyed), 2)} (this build / it: ${fmt(pairedRatio(runs.detector, runs.detectorCompare), 2)})`,
      fmt(med(runs.detectorCompare, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.detectorCompare.map((r) => r.peakRssBytes))),
    ]] : []),
    ['detector, 10x actors', `${fmt(s.detector10Rate)} rec/s`, range(runs.detector10), `${fmt(s.flatDetector, 2)} x detector`, fmt(med(runs.detector10, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.detector10.map((r) => r.peakRssBytes)))],
    ...(runs.detectorCompare10.length > 0 ? [[
      `detector of ${opts.compareCli}, 10x actors`, `${fmt(med(runs.detectorCompare10, (r) => r.rate))} rec/s`, range(runs.detectorCompare10),
      `${fmt(pairedRatio(runs.detectorCompare10, runs.detectorCompare), 2)} x its 1x (this build / it: ${fmt(pairedRatio(runs.detector10, runs.detectorCompare10), 2)})`,
      fmt(med(runs.detectorCompare10, (r) => r.cpuUsPerRecord), 1), mib(Math.max(...runs.detectorCompare10.map((r) => r.peakRssBytes))),
    ]] : []),
  ];
  const header = ['stage (median of runs)', 'rate', 'range of runs', 'ratio (paired median)', 'CPU us/rec', 'peak RSS'];
  const redisRows: string[][] = [
    ['Redis round trips / keyed record (proxy, profiled run)', fmt(s.roundTripsPerEvent, 4)],
    ['Redis reads processed / keyed record (upper bound of round trips)', fmt(s.readsPerEvent, 4)],
    ['Redis commands sent / keyed record (proxy)', fmt(s.commandsSentPerEvent, 4)],
    ['Redis commands executed / keyed record (incl. inside Lua)', fmt(s.commandsPerEvent, 3)],
    ['Lua script calls (EVALSHA+EVAL) / keyed record', fmt(s.scriptCallsPerEvent, 4)],
    ['Redis CPU us / keyed record', fmt(s.redisCpuUsPerEvent, 1)],
    ['Redis memory / (group, pane), INFO delta at the peak of pairs', `${fmt(s.bytesPerGroupPane)} B`],
    ['Redis memory / (group, pane), MEMORY USAGE of the pane hashes (census near the peak)', `${fmt(s.sampledBytesPerGroupPane)} B`],
    ['(group, pane) pairs in Redis at the peak', fmt(s.groupPanes)],
    ['  entry bytes per sampled pane record', `${fmt(paneInfo?.sampledSetBytes)} B`],
    ['  value entries per pane record, mean encoded entry length', `${fmt(paneInfo?.membersPerSet, 1)}, ${fmt(paneInfo?.memberBytes, 1)} B`],
    ['  pane hash encodings (census)', JSON.stringify(paneInfo?.hashEncodings ?? {})],
    ['  pruned pane records (sample)', `${fmt((paneInfo?.prunedShare ?? Number.NaN) * 100, 1)}%`],
    ['Redis memory / (group, pane), 10x actors', `${fmt(s.bytesPerGroupPane10)} B`],
    ['Redis memory still held once every window closed (INFO delta at the end of the run)', `${fmt(s.retainedBytes / 1024)} KiB`
      + (runs.detectorCompare.length > 0 ? ` (the --compare-cli build: ${fmt(s.retainedBytesCompare / 1024)} KiB)` : '')],
  ];
  const liveRows: string[][] = live ? [
    ['rate produced', `${fmt(live.producedRate)} ev/s for ${live.seconds} s`],
    ['alerts received / expected', `${live.receivedAlerts} / ${live.expectedAlerts}`],
    ['alert latency p50 / p99 / max (windows closed by stream time)', `${fmt(live.latencyMs.p50)} / ${fmt(live.latencyMs.p99)} / ${fmt(live.latencyMs.max)} ms over ${live.streamClosed} alerts in ${live.distinctAlertWindows} windows`],
    ['  of which decision (createdAt - watermark) p50 / p99', `${fmt(live.decideMs.p50)} / ${fmt(live.decideMs.p99)} ms`],
    ['  of which publish + delivery p50 / p99', `${fmt(live.publishMs.p50)} / ${fmt(live.publishMs.p99)} ms`],
    ['  transit to the detector (watermark seen in Redis) p50 / p99', `${fmt(live.breakdownMs.transit.p50)} / ${fmt(live.breakdownMs.transit.p99)} ms`],
    ['  close + evaluate + build: createdAt - watermark seen (below the 50 ms poll resolution when <= 50) p50 / p99', `${fmt(live.breakdownMs.evaluate.p50)} / ${fmt(live.breakdownMs.evaluate.p99)} ms`],
    ['every (window, partition) closed: checkpoint written - watermark instant p50 / p99 / max', `${fmt(live.windowCloseMs.p50)} / ${fmt(live.windowCloseMs.p99)} / ${fmt(live.windowCloseMs.max)} ms over ${live.windowCloseMs.n}`],
    ['detector stream time behind the wall clock p50 / p99', `${fmt(live.detectorStreamLagMs.p50)} / ${fmt(live.detectorStreamLagMs.p99)} ms`],
    ['windows closed by idleness after traffic stopped', `${live.idleClosed.n} (p50 ${fmt(live.idleClosed.p50)} ms, max ${fmt(live.idleClosed.max)} ms)`],
    ['lag at end of production (router; detector)', `${live.lagAtEnd.router}; ${live.lagAtEnd.detector} records`],
    ['CPU (router; detector)', `${fmt(live.cpuPercent.router)}%; ${fmt(live.cpuPercent.detector)}%`],
    ['peak RSS (router; detector)', `${mib(live.peakRssBytes.router)}; ${mib(live.peakRssBytes.detector)}`],
    ['late events (detector)', fmt(live.late)],
  ] : [];
  const targetRows = targets.map((t) => [t.name, t.target, t.value, t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL', t.margin]);
  const targetHeader = ['target (issue 4)', 'goal', 'measured', 'result', 'margin'];

  const out: string[] = [];
  out.push('', textTable(header, rows), '', textTable(['Redis', 'value'], redisRows));
  if (live) out.push('', textTable([`alert latency, live ${live.rate} ev/s`, 'value'], liveRows));
  out.push('', textTable(targetHeader, targetRows), '');
  for (const [role, p] of Object.entries(profiles)) {
    out.push(`${role} profile: busy ${(p.busyMs / 1000).toFixed(1)} s, GC ${(p.gcMs / 1000).toFixed(1)} s; top self time:`);
    for (const f of p.top.slice(0, 8)) out.push(`  ${(f.selfShare * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.location}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);

  const finishedAt = new Date();
  const result = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    minutes: (finishedAt.getTime() - startedAt.getTime()) / 60_000,
    command,
    options: opts,
    machine,
    loadAvgAtEnd: (await import('node:os')).loadavg(),
    stream: { raw: raw1, raw10, keyedRecords: s.keyedRecords, keyedRecords10: s.keyedRecords10 },
    summary: s,
    targets,
    runs,
    profiling: { router: profRouter, detector: profDetector, summaries: profiles },
    live,
    errors,
  };
  const resultsDir = path.join(root, 'bench-results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, `${stamp}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(result, null, 2)}\n`);
  log(`result: ${path.relative(root, jsonFile)}`);
  if (errors.length === 0 && (opts.routerOnly || opts.detectorOnly)) {
    log(`docs/benchmarks.md left alone (--${opts.routerOnly ? 'router' : 'detector'}-only)`);
  } else if (errors.length === 0 && opts.throughput) {
    const mdFile = path.join(root, 'docs', 'benchmarks.md');
    const kept = existsSync(mdFile) ? keptBlocks(readFileSync(mdFile, 'utf8')) : [];
    writeFileSync(mdFile, markdown({
      machine, command, opts, startedAt, minutes: result.minutes, raw1, raw10, s, header, rows, redisRows, live, liveRows,
      targetHeader, targetRows, profiles, jsonFile: path.relative(root, jsonFile), fieldRows, commandRows, kept,
    }));
    log('docs/benchmarks.md updated');
  } else {
    if (opts.detectorOnly && errors.length === 0) {
      log('docs/benchmarks.md left alone (--detector-only)');
      for (const r of targetRows) log(`  ${r.join(' | ')}`);
      for (const r of rows) log(`  ${r.join(' | ')}`);
      for (const r of redisRows) log(`  ${r.join(' | ')}`);
    } else {
      log(opts.throughput ? 'docs/benchmarks.md NOT updated (the run failed)' : 'docs/benchmarks.md left alone (--live-only)');
      process.exitCode = 1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// docs/benchmarks.md

interface MdInput {
  machine: Machine;
  command: string;
  opts: Options;
  startedAt: Date;
  minutes: number;
  raw1: LoadResult | null;
  raw10: LoadResult | null;
  s: Record<string, number>;
  header: string[];
  rows: string[][];
  redisRows: string[][];
  live: LiveResult | null;
  liveRows: string[][];
  targetHeader: string[];
  targetRows: string[][];
  profiles: Record<string, ProfileSummary & { kept: string | null; bytes: number }>;
  jsonFile: string;
  fieldRows: string[][];
  commandRows: string[][];
  /** Blocks from `<!-- KEEP -->` to `<!-- /KEEP -->` of the previous docs/benchmarks.md, markers included. */
  kept: string[];
}

function markdown(m: MdInput): string {
  const { machine: mc, s } = m;
  const L: string[] = [];
  L.push('# Benchmarks');
  L.push('');
  L.push('<!-- Generated by `npm run bench` (bench/run.ts); edits are overwritten by the next run, except the hand-written sections between KEEP markers. -->');
  L.push('');
  L.push(`Latest run: ${m.startedAt.toISOString()}, ${m.minutes.toFixed(1)} minutes, \`${m.command}\` `
    + `(full result: \`${m.jsonFile}\`, git-ignored).`);
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push(mdTable(['', ''], [
    ['cores (nproc)', String(mc.nproc)],
    ['memory', `${mc.memoryGiB} GiB`],
    ['CPU', mc.cpuModel],
    ['kernel', mc.kernel],
    ['node', mc.node],
    ['java', mc.java],
    ['redis', mc.redis],
    ['kafka', mc.kafka],
    ['kafkajs', mc.kafkajs],
    ['load average at start (1/5/15 min)', mc.loadAvgAtStart.join(' / ')],
  ]));
  L.push('');
  L.push('Kafka, Redis, the workers and the load generator share these cores; other sessions may run tests on the');
  L.push('same machine at the same time. Rates vary from run to run; ratios against the no-op consumer measured');
  L.push('in the same run, next to each stage run, are the stable figures.');
  L.push('');
  L.push('## Targets (issue 4)');
  L.push('');
  L.push(mdTable(m.targetHeader, m.targetRows));
  L.push('');
  L.push('## Throughput');
  L.push('');
  const r1 = m.raw1;
  L.push(`Stream: ${fmt(r1?.events)} generated audit events (seed ${m.opts.seed}, 60 planned attacks, 3 clusters; `
    + `${fmt((r1?.bytes ?? 0) / 2 ** 20)} MiB of JSON, ${fmt(((r1?.maxEventTime ?? 0) - (r1?.minEventTime ?? 0)) / 3_600_000, 1)} h of event time), `
    + `${fmt(s.keyedRecords)} keyed records after the rule filter and the per-IP fan-out. `
    + `Median of ${m.opts.runs} runs; every run uses fresh consumer groups and a fresh Redis prefix.`);
  L.push('');
  L.push(mdTable(m.header, m.rows));
  L.push('');
  L.push('## Redis');
  L.push('');
  L.push(mdTable(['', 'value'], m.redisRows));
  L.push('');
  if (m.commandRows.length > 0) {
    L.push('Commands executed in detector run 1 (INFO commandstats deltas; commands called from Lua are counted under their own name):');
    L.push('');
    L.push(mdTable(['command', 'calls', 'per keyed record'], m.commandRows));
    L.push('');
  }
  if (m.fieldRows.length > 0) {
    L.push('What a pane record holds (sampled pane records of detector run 1; entry bytes include the 2-3 byte code and length):');
    L.push('');
    L.push(mdTable(['field', 'read by', 'entries per record', 'entry bytes per record'], m.fieldRows));
    L.push('');
  }
  if (m.live) {
    L.push(`## Alert latency (live ${m.live.rate} ev/s)`);
    L.push('');
    L.push(mdTable(['', 'value'], m.liveRows));
    L.push('');
  }
  L.push('## CPU profiles');
  L.push('');
  if (Object.keys(m.profiles).length === 0) L.push('Not recorded in this run (`--no-profile`).');
  for (const [role, p] of Object.entries(m.profiles)) {
    L.push(`### ${role}`);
    L.push('');
    const span = p.window === undefined ? `over one full run (${fmt(p.wallMs / 1000, 1)} s wall, `
      : `over one run, counting only its measured interval (group Stable to done: ${fmt((p.window.toMs - p.window.fromMs) / 1000, 1)} s of the process's ${fmt(p.wallMs / 1000, 1)} s; start-up and shutdown left out; `;
    L.push(`\`node --cpu-prof\` on the ${role} child process ${span}`
      + `${fmt(p.busyMs / 1000, 1)} s busy, GC ${fmt(p.gcMs / 1000, 1)} s = ${fmt((p.gcMs / p.busyMs) * 100, 1)}% of busy). `
      + (p.kept ? `Profile: \`${p.kept}\` (${fmt(p.bytes / 1024)} KiB; open in Chrome DevTools or speedscope).` : `Profile not kept (${fmt(p.bytes / 2 ** 20, 1)} MiB >= 5 MiB); summary only.`));
    L.push('');
    L.push(mdTable(['#', 'function', 'location', 'self ms', 'self % of busy'], p.top.map((f, i) => [String(i + 1), f.name, f.location, fmt(f.selfMs), fmt(f.selfShare * 100, 1)])));
    L.push('');
    L.push('Self time by area:');
    L.push('');
    L.push(mdTable(['area', 'self % of busy'], p.byArea.map((a) => [a.area, fmt(a.selfShare * 100, 1)])));
    L.push('');
  }
  // Hand-written notes (e.g. the log of optimizations) survive a regeneration.
  for (const block of m.kept) L.push(block, '');
  L.push('## Method');
  L.push('');
  L.push(`- **Load**: \`generateAuditStream\` (test/helpers/audit-generator.ts) is produced once into a fresh raw topic`);
  L.push('  (3 partitions, key `${username}|${firstIP}`, header `kade.namespace` = cluster, `sendChunked` < 512 KB per call).');
  L.push('  The 10x-actors stream (`actorsScale: 10`, same event count and rate) goes to a second raw topic.');
  L.push('- **Workers** are separate node processes: `node dist/src/cli.js run --role router|detector` with KADE_* variables,');
  L.push('  and `dist/bench/noop-consumer.js`, the ceiling: kade\'s own batch loop (`runBatchLoop`: eachBatch, resolve, commit,');
  L.push('  heartbeat) with the same consumer options and a handler that does nothing. Log level info, as deployed.');
  L.push('- **Rate** = input records / (time the group\'s committed offsets reach the end offsets - time the group is first');
  L.push('  seen Stable), both polled every 50 ms with the Kafka admin API, the same way for every worker. The detector also');
  L.push(`  waits for every partition checkpoint's lastClosed to pass its last window (idle timeout 1 s, tick 100 ms, lateness`);
  L.push(`  ${m.opts.latenessMs / 1000} s so a backlog replay has no late events). Ratios are per run (stage / no-op run just before it), then the median.`);
  L.push('- **Router** runs read the raw topic and each write a fresh keyed topic (6 partitions); the detector and the no-op');
  L.push('  keyed runs read the keyed topic of router run 1.');
  L.push('- **Redis**: a private `redis-server` (same binary, no persistence, like the shared one) flushed before each detector run;');
  L.push('  the detector uses the default key prefix `kade`, so key names are as long as in a default deployment.');
  L.push('  `INFO stats/commandstats/memory/cpu` before and after each detector run (the bench\'s own INFO and checkpoint polls');
  L.push('  are subtracted). `total_commands_processed` counts commands run inside Lua too. Round trips cannot be read');
  L.push('  from INFO: in the profiled detector run Redis traffic goes through a TCP proxy that counts request turns per');
  L.push('  connection (a client write after the server answered = one round trip = one pipeline) and top-level RESP');
  L.push('  commands; `total_reads_processed` is reported as an upper bound (a large pipeline takes several reads).');
  L.push('- **Memory per (group, pane)**: while the detector runs, every 250 ms the bench counts the (group, pane) pairs in');
  L.push(`  Redis (SCAN of the pane hashes \`<prefix>:{epe2:v${STATE_LAYOUT}:p<partition>}:q:<pane base 36>\`, HLEN of each) and reads`);
  L.push('  `used_memory`; the figure is `used_memory` minus before at the sample with the most pairs, over those pairs:');
  L.push('  everything the detector keeps (pane records, HLLs, partition keys, suppression) per live pair. (Since state layout 4');
  L.push('  a pane\'s hash is deleted once no window reads it, so the end of a run holds few pairs.) The MEMORY USAGE figure');
  L.push('  (every pane hash and pane HLL, taken when the pairs first exceed 1.2x the previous census) is the per-key view');
  L.push('  without the partition keys and allocator overhead. The sampler\'s own commands are subtracted from the command counts.');
  L.push('- **Alert latency**: fresh topics; router and detector run live (lateness 30 s, idle timeout 2 s) while the bench');
  L.push(`  produces the generator\'s stream (${m.opts.liveAttacks} planned attacks) with \`startMs\` = the whole second 2 to 12 s from now where the most attacks fit (the count depends on the start's place in its pane) and \`eventsPerSecond\` = rate, releasing each event when the`);
  L.push('  wall clock reaches its event time, so event time = wall clock at production (up to the generator\'s 2 s jitter).');
  L.push('  The generator plants its attacks where whole patterns fit, which in a few minutes is a single pane; so the bench');
  L.push('  adds 6 probe attackers per whole pane (24 requests each: 8 URIs, 5 resources, allowed and forbidden = one alert');
  L.push('  each, for the window ending at the pane\'s end), and every window closed during the run has alerts.');
  L.push('  A window ending at t is passed by the watermark at wall time t + lateness; latency = time an alert consumer');
  L.push('  (maxWaitTime 100 ms) receives the alert - (t + lateness). Windows whose t + lateness falls after the traffic stops');
  L.push('  close by idleness and are reported apart. The split: the bench polls every partition checkpoint\'s streamTime');
  L.push('  (saved by the detector with each batch) every 50 ms; "transit" ends at the first poll where the alert\'s keyed');
  L.push('  partition (murmur2 of the group key) has a watermark past the window end; "close + evaluate + build" ends at the');
  L.push('  alert\'s createdAt; "publish + delivery" ends when the alert consumer receives it.');
  L.push('- **Peak RSS** is VmHWM of each worker process (/proc/<pid>/status) at the end of its run; CPU from /proc/<pid>/stat.');
  L.push('- **Profiles**: one extra router and detector run with `node --cpu-prof`, not counted in the medians; the summary');
  L.push('  is self time per function (bench/lib/profile.ts; `node dist/bench/profile-summary.js FILE` prints it).');
  L.push('- **Run time** on this machine: about 3 minutes per 100k events (3 runs each of 2 no-op, 2 router and 2 detector');
  L.push('  measurements, plus the profiled runs) and 5 minutes of fixed cost (live run, process start-ups): 300k events take');
  L.push('  about 15 minutes, the default 1M about 35-40.');
  L.push('- **Kafka clients** (issue 4 asks for @platformatic/kafka and @confluentinc/kafka-javascript): not measured;');
  L.push('  this benchmark adds no npm dependency. kafkajs 2.2.4 only.');
  L.push('');
  return `${L.join('\n')}\n`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
