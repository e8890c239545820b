/**
 * In-process micro-benchmark of the router's pure step (decode -> normalize -> filter -> keyed
 * records), without Kafka: `node dist/bench/route-micro.js [events] [rounds]`. Prints CPU time per
 * raw event for routeRecords alone and with the keyed records' partitioner (the minimum over the
 * rounds is the figure to compare: the machine is shared), so
 * a change to the hot loop can be judged in seconds before the end-to-end bench (`npm run bench`).
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import { KeyedCodec } from '../src/ingest/keyed-codec';
import { FastDefaultPartitioner } from '../src/ingest/partitioner';
import { SourceRecord } from '../src/ingest/dead-letter';
import { routeRecords, RouteOptions } from '../src/ingest/route';
import { loadRules } from '../src/rules/load-rules';
import { generatedRawRecords } from './lib/keyed-stream';

const events = Number(process.argv[2] ?? 50_000);
const rounds = Number(process.argv[3] ?? 5);
const batchSize = 1000;

const records = generatedRawRecords(events);
const batches: SourceRecord[][] = [];
for (let i = 0; i < records.length; i += batchSize) batches.push(records.slice(i, i + batchSize));

const opts: RouteOptions = {
  plans: loadRules(''), codec: new KeyedCodec(), timeField: 'requestReceivedTimestamp',
  namespaceHeader: 'kade.namespace', defaultNamespace: 'default', maxMessageBytes: 1 << 20,
};
const partitioner = FastDefaultPartitioner();
const partitionMetadata = [0, 1, 2, 3, 4, 5].map((p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));

function run(withPartitioner: boolean): { usPerEvent: number; keyed: number } {
  const t0 = process.cpuUsage();
  let keyed = 0;
  let sink = 0;
  for (const b of batches) {
    const r = routeRecords(b, opts);
    keyed += r.keyed.length;
    if (withPartitioner) {
      for (const m of r.keyed) {
        sink += m.partition ?? partitioner({ topic: 'keyed', partitionMetadata, message: m });
      }
    }
  }
  const d = process.cpuUsage(t0);
  if (sink < 0) process.stdout.write('');
  return { usPerEvent: (d.user + d.system) / records.length, keyed };
}

process.stdout.write(`${records.length} events, ${batches.length} batches of ${batchSize}\n`);
let bestA = Number.POSITIVE_INFINITY;
let bestB = Number.POSITIVE_INFINITY;
for (let i = 0; i < rounds; i++) {
  const a = run(false);
  const b = run(true);
  bestA = Math.min(bestA, a.usPerEvent);
  bestB = Math.min(bestB, b.usPerEvent);
  process.stdout.write(`round ${i + 1}: routeRecords ${a.usPerEvent.toFixed(1)} us/event; + partitioner ${b.usPerEvent.toFixed(1)} us/event (${a.keyed} keyed records)\n`);
}
process.stdout.write(`min: routeRecords ${bestA.toFixed(1)} us/event; + partitioner ${bestB.toFixed(1)} us/event\n`);
