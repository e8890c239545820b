import { SourceRecord } from '../../src/ingest/dead-letter';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { FastDefaultPartitioner } from '../../src/ingest/partitioner';
import { routeRecords } from '../../src/ingest/route';
import { CompiledPlan } from '../../src/detect/compiled-plan';
import { generateAuditStream } from '../../test/helpers/audit-generator';

/** The generator's stream (seed 42, 20 attacks) as raw-topic records, header kade.namespace = cluster. */
export function generatedRawRecords(events: number, actorsScale = 1): SourceRecord[] {
  const raw: SourceRecord[] = [];
  for (const ev of generateAuditStream({ seed: 42, events, attacks: 20, actorsScale })) {
    raw.push({ topic: 'raw', partition: 0, offset: String(raw.length), key: null, value: Buffer.from(JSON.stringify(ev.event)), headers: { 'kade.namespace': Buffer.from(ev.cluster) } });
  }
  return raw;
}

/** A keyed record as it sits on one partition of the keyed topic. */
export interface KeyedMessage {
  key: Buffer;
  value: Buffer;
  offset: number;
}

/**
 * Routes raw records (batches of 1,000, as the router does) and spreads the keyed records over
 * `partitions` with the producers' partitioner; offsets count from 0 per partition.
 */
export function keyedByPartition(raw: SourceRecord[], plans: CompiledPlan[], partitions: number): KeyedMessage[][] {
  const codec = new KeyedCodec();
  const partitioner = FastDefaultPartitioner();
  const partitionMetadata = [...Array(partitions).keys()].map((p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
  const out: KeyedMessage[][] = [...Array(partitions)].map(() => []);
  for (let i = 0; i < raw.length; i += 1000) {
    const routed = routeRecords(raw.slice(i, i + 1000), {
      plans, codec, timeField: 'requestReceivedTimestamp', namespaceHeader: 'kade.namespace', defaultNamespace: 'default', maxMessageBytes: 1 << 20,
    });
    for (const m of routed.keyed) {
      const list = out[partitioner({ topic: 'keyed', partitionMetadata, message: m })];
      list.push({ key: m.key as Buffer, value: m.value as Buffer, offset: list.length });
    }
  }
  return out;
}
