/**
 * `npm run bench:clients [-- --events N --runs R --clients kafkajs,platformatic,confluent]`
 *
 * The Kafka client comparison of issue 4: the same pre-filled topics, every client that installed,
 * each workload in its own node process (bench/client-worker.ts), runs interleaved between the
 * clients (and the order rotated per run) so machine noise hits all of them alike. Workloads:
 *   noop-raw     consumer group reads the raw topic (3 partitions), commits, nothing else
 *   noop-rc      the same, read_committed, on a transactional topic (what the detector reads)
 *   produce      idempotent producer, acks=-1, ~512 KB sends one after the other
 *   ctp          consume raw, one transaction per batch and partition: output + sendOffsets (the router)
 * Consumer rates are measured from outside, as bench/run.ts does: from the group turning Stable
 * to every committed offset reaching the end. Producer rates are timed by the worker around its
 * sends only. Ratios are paired: each run's rate over kafkajs's rate in the same run, median.
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Admin } from 'kafkajs';
import { packageRoot } from '../src/util/package-root';
import { BROKERS, testKafka } from '../test/helpers/kafka';
import { createTopic, deleteGroupsQuietly, deleteTopicsQuietly, endOffsets, loadRawTopic, total, watchGroup } from './lib/kafka-util';
import { machineInfo, mdTable } from './lib/report';
import { fmt, log, median, sleep } from './lib/util';
import { Worker, cpuSecondsOf, memoryOf, spawnClientWorker } from './lib/workers';

const ALL_CLIENTS = ['kafkajs', 'platformatic', 'confluent'] as const;
type ClientName = (typeof ALL_CLIENTS)[number];
const PACKAGES: Record<ClientName, string> = { kafkajs: 'kafkajs', platformatic: '@platformatic/kafka', confluent: '@confluentinc/kafka-javascript' };
const WORKLOADS = ['noop-raw', 'noop-rc', 'produce', 'ctp'] as const;
type Workload = (typeof WORKLOADS)[number];
const WORKLOAD_LABEL: Record<Workload, string> = {
  'noop-raw': 'no-op consumer, raw topic',
  'noop-rc': 'no-op consumer, read_committed, transactional topic',
  produce: 'idempotent producer, acks=-1',
  ctp: 'transactional consume-transform-produce (router path)',
};

interface Options { events: number; runs: number; clients: ClientName[]; seed: number; batchRecords: number }

function options(argv: string[]): Options {
  const o: Options = { events: 200_000, runs: 3, clients: [...ALL_CLIENTS], seed: 42, batchRecords: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--events': o.events = Number(v); i++; break;
      case '--runs': o.runs = Number(v); i++; break;
      case '--seed': o.seed = Number(v); i++; break;
      case '--batch-records': o.batchRecords = Number(v); i++; break;
      case '--clients': o.clients = v.split(',') as ClientName[]; i++; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  for (const c of o.clients) if (!ALL_CLIENTS.includes(c)) throw new Error(`unknown client ${c}`);
  return o;
}

interface Installed { client: ClientName; version: string; note: string }

/** Which clients load in this Node, with their versions (a client that does not load is skipped). */
function probeClients(wanted: ClientName[]): { installed: Installed[]; missing: Array<{ client: ClientName; error: string }> } {
  const req = createRequire(path.join(packageRoot(), 'package.json'));
  const installed: Installed[] = [];
  const missing: Array<{ client: ClientName; error: string }> = [];
  for (const client of wanted) {
    try {
      const mod = req(PACKAGES[client]) as { librdkafkaVersion?: string };
      const version = (JSON.parse(readFileSync(path.join(packageRoot(), 'node_modules', PACKAGES[client], 'package.json'), 'utf8')) as { version: string }).version;
      installed.push({ client, version, note: mod.librdkafkaVersion !== undefined ? `librdkafka ${mod.librdkafkaVersion}` : '' });
    } catch (err) {
      missing.push({ client, error: (err as Error).message.split('\n')[0] });
    }
  }
  return { installed, missing };
}

interface Ctx { admin: Admin; runId: string; logDir: string; opts: Options; topics: Set<string>; groups: string[] }

interface Sample { client: ClientName; workload: Workload; run: number; records: number; seconds: number; rate: number; cpuUsPerRecord: number; peakRssBytes: number }

/** The worker's `RESULT {json}` line (its log is piped to a file: wait a moment for the last write). */
async function workerResult(w: Worker): Promise<Record<string, number>> {
  for (let i = 0; i < 40; i++) {
    const line = readFileSync(w.logFile, 'utf8').split('\n').reverse().find((l) => l.startsWith('RESULT '));
    if (line !== undefined) return JSON.parse(line.slice('RESULT '.length)) as Record<string, number>;
    await sleep(50);
  }
  throw new Error(`${w.name} printed no RESULT; log ${w.logFile}`);
}

function spawnClient(ctx: Ctx, name: string, extra: Record<string, string>): Worker {
  return spawnClientWorker(name, BROKERS, ctx.logDir, {
    BENCH_SEED: String(ctx.opts.seed),
    BENCH_EVENTS: String(ctx.opts.events),
    BENCH_BATCH_RECORDS: String(ctx.opts.batchRecords),
    ...extra,
  });
}

/**
 * A consumer workload: rate from the group turning Stable to every committed offset reaching
 * `ends`. `expected` records must have gone through the worker (its own count, read at the end).
 */
async function consumerRun(
  ctx: Ctx, client: ClientName, workload: Workload, run: number, topic: string, ends: Map<number, number>, expected: number, extra: Record<string, string>,
): Promise<Sample> {
  const group = `${ctx.runId}-${client}-${workload}-r${run}`;
  ctx.groups.push(group);
  const w = spawnClient(ctx, `${client}-${workload}-r${run}`, { BENCH_CLIENT: client, BENCH_TOPIC: topic, BENCH_GROUP: group, ...extra });
  let times;
  let cpu = Number.NaN;
  let rss = Number.NaN;
  try {
    times = await watchGroup(ctx.admin, group, topic, ends, [w], { timeoutMs: 10 * 60_000 });
    cpu = cpuSecondsOf(w.pid);
    rss = memoryOf(w.pid)?.peakRss ?? Number.NaN;
  } finally {
    await w.stop(30_000);
  }
  const r = await workerResult(w);
  if (r.records !== expected) throw new Error(`${w.name} handled ${r.records} records, expected ${expected}; log ${w.logFile}`);
  const seconds = (times.tLagZero - times.tStable) / 1000;
  return { client, workload, run, records: expected, seconds, rate: expected / seconds, cpuUsPerRecord: (cpu * 1e6) / expected, peakRssBytes: rss };
}

async function produceRun(ctx: Ctx, client: ClientName, run: number): Promise<Sample> {
  const topic = `${ctx.runId}-produce-${client}-r${run}`;
  await createTopic(ctx.admin, topic, 3);
  ctx.topics.add(topic);
  const w = spawnClient(ctx, `${client}-produce-r${run}`, { BENCH_CLIENT: client, BENCH_MODE: 'produce', BENCH_TOPIC: topic });
  const code = await w.exited;
  if (code !== 0) throw new Error(`${w.name} exited with ${code}; log ${w.logFile}`);
  const r = await workerResult(w);
  const landed = total(await endOffsets(ctx.admin, topic));
  // The worker sends one record before the clock starts (connection, producer id), then all of them.
  if (landed !== r.records + r.warmup) throw new Error(`${w.name}: ${landed} records in ${topic}, expected ${r.records + r.warmup}`);
  await deleteTopicsQuietly(ctx.admin, [topic]);
  ctx.topics.delete(topic);
  return { client, workload: 'produce', run, records: r.records, seconds: r.seconds, rate: r.records / r.seconds, cpuUsPerRecord: Number.NaN, peakRssBytes: Number.NaN };
}

async function ctpRun(ctx: Ctx, client: ClientName, run: number, raw: string, rawEnds: Map<number, number>, keep = false): Promise<{ sample: Sample; out: string }> {
  const out = `${ctx.runId}-ctp-${client}-r${run}`;
  await createTopic(ctx.admin, out, 6);
  ctx.topics.add(out);
  const sample = await consumerRun(ctx, client, 'ctp', run, raw, rawEnds, total(rawEnds), { BENCH_MODE: 'ctp', BENCH_OUT_TOPIC: out });
  if (!keep) {
    await deleteTopicsQuietly(ctx.admin, [out]);
    ctx.topics.delete(out);
  }
  return { sample, out };
}

/**
 * Committed offsets a read_committed consumer ends at: on a topic written only in transactions the
 * last offset of every partition is a commit marker, which some clients commit past and others
 * do not; the last data record + 1 counts as the end for all.
 */
async function readCommittedEnds(admin: Admin, topic: string): Promise<Map<number, number>> {
  const ends = await endOffsets(admin, topic);
  return new Map([...ends].map(([p, e]) => [p, e > 0 ? e - 1 : 0]));
}

function summarize(samples: Sample[], installed: Installed[]): { rows: string[][]; ratios: Record<string, Record<string, number>> } {
  const rows: string[][] = [];
  const ratios: Record<string, Record<string, number>> = {};
  for (const wl of WORKLOADS) {
    for (const inst of installed) {
      const mine = samples.filter((s) => s.client === inst.client && s.workload === wl);
      if (mine.length === 0) continue;
      const paired = mine.map((s) => s.rate / (samples.find((b) => b.client === 'kafkajs' && b.workload === wl && b.run === s.run)?.rate ?? Number.NaN));
      const ratio = median(paired);
      (ratios[inst.client] ??= {})[wl] = ratio;
      const rates = mine.map((s) => s.rate);
      rows.push([
        WORKLOAD_LABEL[wl], inst.client, inst.version, `${fmt(median(rates))} rec/s`, `${fmt(Math.min(...rates))} - ${fmt(Math.max(...rates))}`,
        fmt(ratio, 2), fmt(median(mine.map((s) => s.cpuUsPerRecord)), 1), Number.isFinite(median(mine.map((s) => s.peakRssBytes))) ? `${fmt(median(mine.map((s) => s.peakRssBytes)) / 2 ** 20)} MiB` : '-',
      ]);
    }
  }
  return { rows, ratios };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const root = packageRoot();
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const logDir = path.join(root, 'bench-results', 'logs', `clients-${stamp}`);
  mkdirSync(logDir, { recursive: true });
  const machine = machineInfo();
  const { installed, missing } = probeClients(opts.clients);
  for (const m of missing) log(`skipping ${m.client}: ${m.error}`);
  if (!installed.some((i) => i.client === 'kafkajs')) throw new Error('kafkajs is the baseline and must be among --clients');
  log(`clients: ${installed.map((i) => `${i.client} ${i.version}`).join(', ')}; ${opts.events} events, ${opts.runs} runs; ${machine.nproc} cores, load ${machine.loadAvgAtStart.join(' ')}`);

  const kafka = testKafka('kade-bench-clients');
  const admin = kafka.admin();
  await admin.connect();
  const ctx: Ctx = { admin, runId: `kadeclients-${Date.now().toString(36)}`, logDir, opts, topics: new Set(), groups: [] };
  const samples: Sample[] = [];
  try {
    const raw = `${ctx.runId}-raw`;
    ctx.topics.add(raw);
    const loaded = await loadRawTopic(kafka, admin, raw, { seed: opts.seed, events: opts.events });
    log(`raw topic: ${loaded.events} events, ${fmt(loaded.bytes / 2 ** 20)} MiB of JSON, loaded in ${loaded.seconds.toFixed(1)} s`);
    const rawEnds = await endOffsets(admin, raw);

    // Warm-up (page cache, JIT of the broker) that also writes the transactional topic for noop-rc:
    // kafkajs through kade's PartitionTransactions, as the router writes the keyed topic.
    const warm = await ctpRun(ctx, 'kafkajs', 0, raw, rawEnds, true);
    const txTopic = warm.out;
    const rcEnds = await readCommittedEnds(admin, txTopic);
    log(`transactional topic ${txTopic}: written at ${fmt(warm.sample.rate)} rec/s (warm-up, not counted), ${total(await endOffsets(admin, txTopic)) - loaded.events} control records`);

    for (let run = 1; run <= opts.runs; run++) {
      const order = installed.map((_, i) => installed[(i + run - 1) % installed.length].client);
      for (const c of order) samples.push(await consumerRun(ctx, c, 'noop-raw', run, raw, rawEnds, loaded.events, { BENCH_MODE: 'noop' }));
      for (const c of order) samples.push(await consumerRun(ctx, c, 'noop-rc', run, txTopic, rcEnds, loaded.events, { BENCH_MODE: 'noop' }));
      for (const c of order) samples.push(await produceRun(ctx, c, run));
      for (const c of order) samples.push((await ctpRun(ctx, c, run, raw, rawEnds)).sample);
      for (const s of samples.filter((x) => x.run === run)) log(`  run ${run} ${s.workload} ${s.client}: ${fmt(s.rate)} rec/s (${s.seconds.toFixed(2)} s)`);
    }
  } finally {
    await deleteTopicsQuietly(admin, [...ctx.topics]);
    await deleteGroupsQuietly(admin, ctx.groups);
    await admin.disconnect();
  }

  const { rows, ratios } = summarize(samples, installed);
  const header = ['workload', 'client', 'version', 'rate (median)', 'range of runs', 'ratio to kafkajs (paired median)', 'CPU us/rec', 'peak RSS'];
  const table = mdTable(header, rows);
  const outFile = path.join(root, 'bench-results', `clients-${stamp}.json`);
  writeFileSync(outFile, JSON.stringify({ startedAt, opts, machine, installed, missing, samples, ratios }, null, 2));
  process.stdout.write(`\n${table}\n\nmachine: ${machine.nproc} cores (${machine.cpuModel}), load at start ${machine.loadAvgAtStart.join(' / ')}, node ${machine.node}\n`);
  process.stdout.write(`full result: ${path.relative(root, outFile)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:clients: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
