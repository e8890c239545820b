/**
 * In-process micro-benchmark of the detector's pure per-record work, without Kafka or Redis:
 * `node dist/bench/detect-micro.js [events] [rounds]`. The generator's stream is routed once into
 * keyed records (Avro values and Kafka keys, spread over 6 partitions by the producers'
 * partitioner, cut into batches of 2,500 like a 1 MiB fetch), then each round times, in CPU us per
 * keyed record: decode (the Kafka key string and the value: with KeyedScanner, header and
 * validation only, as detector-stage does; with avsc, the whole record into objects, as before),
 * pre-aggregation into pane deltas, and building the updatePanes arguments (pane entries). Both
 * decoders run in every round (same process: a ratio that survives the shared machine). The
 * minimum over the rounds is the figure to compare; use it to judge a hot-loop change before
 * `npm run bench`.
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import { KeyedCodec } from '../src/ingest/keyed-codec';
import { CollectedValues, KeyedScanner } from '../src/ingest/keyed-scan';
import { loadRules } from '../src/rules/load-rules';
import { DetectorRecord, PreAggregator } from '../src/detect/pre-aggregate';
import { PartitionClock } from '../src/window/partition-clock';
import { buildUpdatePanesArgs } from '../src/state/pane-delta';
import { KeyBuilder } from '../src/state/keys';
import { DELTAS_PER_CALL, updatePaneParams } from '../src/state/redis-state';
import { KeyedMessage, generatedRawRecords, keyedByPartition } from './lib/keyed-stream';

const events = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 5);
const PARTITIONS = 6;
const BATCH = 2500;

const plans = loadRules('');
const plan = plans[0];
const codec = new KeyedCodec();
const raw = generatedRawRecords(events);
const byPartition = keyedByPartition(raw, plans, PARTITIONS);
const batches: Array<{ partition: number; messages: KeyedMessage[] }> = [];
byPartition.forEach((list, partition) => {
  for (let i = 0; i < list.length; i += BATCH) batches.push({ partition, messages: list.slice(i, i + BATCH) });
});
const keyed = batches.reduce((n, b) => n + b.messages.length, 0);

const keys = new KeyBuilder('kade', plan.plan.stateKey);
const update = updatePaneParams(plan, 3600);

function us(t0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(t0);
  return d.user + d.system;
}

const scanner = KeyedScanner.forPlans([plan]);

function round(mode: 'scan' | 'avsc'): { decode: number; aggregate: number; args: number; deltas: number } {
  let decode = 0;
  let aggregate = 0;
  let args = 0;
  let deltas = 0;
  const pre = new PreAggregator(plan.storedFields, plan.plan.window.hopMs);
  const clocks = new Map<number, PartitionClock>();
  for (const b of batches) {
    let t = process.cpuUsage();
    const records: DetectorRecord[] = [];
    if (mode === 'scan') {
      const collected = new CollectedValues();
      for (const m of b.messages) {
        const from = collected.length;
        const h = scanner.read(m.value, collected);
        records.push({ offset: m.offset, eventTime: h.eventTime, collected, from, to: collected.length, kafkaKey: m.key.toString('utf8') });
      }
    } else {
      for (const m of b.messages) {
        const v = codec.decode(m.value);
        records.push({ offset: m.offset, eventTime: v.eventTime, group: v.group, record: v.record, kafkaKey: m.key.toString('utf8') });
      }
    }
    decode += us(t);
    t = process.cpuUsage();
    let clock = clocks.get(b.partition);
    if (clock === undefined) clocks.set(b.partition, (clock = new PartitionClock(plan.plan.window, 600_000, 1000, { streamTime: null, lastClosed: null, idleWatermark: null }, 0)));
    const agg = pre.run(records, clock, 0);
    aggregate += us(t);
    t = process.cpuUsage();
    const keyOf = {
      hash: (pane: number) => keys.paneHash(b.partition, pane),
      hll: (d: { gid: string; pane: number }, f: number) => keys.paneHll(b.partition, d.gid, d.pane, f),
    };
    for (let i = 0; i < agg.deltas.length; i += DELTAS_PER_CALL) buildUpdatePanesArgs(keyOf, agg.deltas.slice(i, i + DELTAS_PER_CALL), update, false);
    args += us(t);
    deltas += agg.deltas.length;
  }
  return { decode: decode / keyed, aggregate: aggregate / keyed, args: args / keyed, deltas };
}

process.stdout.write(`${raw.length} events -> ${keyed} keyed records in ${batches.length} batches (${PARTITIONS} partitions, ${BATCH} per batch)\n`);
type Best = { decode: number; aggregate: number; args: number; total: number };
const best: Record<'scan' | 'avsc', Best> = {
  scan: { decode: Infinity, aggregate: Infinity, args: Infinity, total: Infinity },
  avsc: { decode: Infinity, aggregate: Infinity, args: Infinity, total: Infinity },
};
for (let i = 0; i < rounds; i++) {
  for (const mode of ['avsc', 'scan'] as const) {
    const r = round(mode);
    const total = r.decode + r.aggregate + r.args;
    const b = best[mode];
    b.decode = Math.min(b.decode, r.decode);
    b.aggregate = Math.min(b.aggregate, r.aggregate);
    b.args = Math.min(b.args, r.args);
    b.total = Math.min(b.total, total);
    process.stdout.write(`round ${i + 1} ${mode}: decode ${r.decode.toFixed(2)} + aggregate ${r.aggregate.toFixed(2)} + update args ${r.args.toFixed(2)} = ${total.toFixed(2)} us/record (${r.deltas} deltas)\n`);
  }
}
for (const mode of ['avsc', 'scan'] as const) {
  const b = best[mode];
  process.stdout.write(`min ${mode}: decode ${b.decode.toFixed(2)}, aggregate ${b.aggregate.toFixed(2)}, update args ${b.args.toFixed(2)}, total ${b.total.toFixed(2)} us/record\n`);
}
process.stdout.write(`scan / avsc total: ${(best.scan.total / best.avsc.total).toFixed(2)}\n`);
