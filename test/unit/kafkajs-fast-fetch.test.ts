import { strict as assert } from 'node:assert';
import { decodeRecordBatch, decodedBatches, fastFetchInstalled, kafkajsRecordBatchDecoder } from '../../src/ingest/kafkajs-fast-fetch';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
const Long = require('kafkajs/src/utils/long');
const Decoder = require('kafkajs/src/protocol/decoder');
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as { RecordBatch: (args: Record<string, unknown>) => Promise<{ buffer: Buffer }> };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (args: Record<string, unknown>) => unknown;
const { Types: Compression } = require('kafkajs/src/protocol/message/compression');

/** Park–Miller, seeded: a failure names the case that broke it. */
function rng(seed: number): () => number {
  let s = (seed * 2654435761) % 2147483647 || 1;
  const next = (): number => (s = (s * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 4; i++) next();
  return next;
}

/** Offset of the attributes (int16) in an encoded batch: FirstOffset, Length, Epoch, Magic, CRC. */
const ATTRIBUTES_AT = 8 + 4 + 4 + 1 + 4;

/** One encoded record batch, with the attribute bits kafkajs' encoder cannot set flipped in. */
async function genBatch(r: () => number): Promise<Buffer> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const bytes = (): Buffer | null => {
    const x = r();
    if (x < 0.05) return null;
    if (x < 0.1) return Buffer.alloc(0);
    const n = x < 0.12 ? 200 + Math.floor(r() * 20_000) : Math.floor(r() * 300);
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
    return b;
  };
  const count = r() < 0.05 ? 0 : 1 + Math.floor(r() * (r() < 0.1 ? 400 : 30));
  const firstTimestamp = pick([Date.now(), 0, -1, 1_700_000_000_000 + Math.floor(r() * 1e9), 2 ** 52]);
  // Deltas mostly small; sometimes past 7 varlong bytes (kafkajs' own path then).
  const tsDelta = (): number => {
    const x = r();
    if (x < 0.002) return Math.floor((r() - 0.5) * 2 ** 51);
    if (x < 0.1) return -Math.floor(r() * 100_000);
    return Math.floor(r() * 10_000);
  };
  const records = [];
  let offsetDelta = 0;
  for (let i = 0; i < count; i++) {
    const headers: Record<string, unknown> = {};
    const h = r();
    if (h < 0.15) headers[`h${Math.floor(r() * 3)}`] = Buffer.from('v1');
    if (h < 0.05) headers.dup = [Buffer.from('a'), Buffer.from('b')];
    if (h < 0.02) headers['é😀'] = Buffer.from('x');
    if (h < 0.01) headers.dup = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('c')];
    // A key the spread defines as an own property and assignment would not (kafkajs' path then).
    if (h < 0.005) Object.defineProperty(headers, '__proto__', { value: Buffer.from('p'), enumerable: true });
    if (h > 0.5 && h < 0.6) headers['kade.namespace'] = Buffer.from(`cluster-${Math.floor(r() * 9)}`);
    records.push(Record({ offsetDelta, timestampDelta: Long.fromNumber(tsDelta()), key: bytes(), value: bytes(), headers }));
    offsetDelta += r() < 0.1 ? 1 + Math.floor(r() * 5) : 1;
  }
  // Near and past 2^53 now and then (kafkajs' own path: offsets there are not safe Numbers).
  const firstOffset = r() < 0.05 ? pick([2 ** 53 - 10, 2 ** 60]) : pick([0, Math.floor(r() * 1e6), Math.floor(r() * 2 ** 40)]);
  const enc = await RecordBatch({
    compression: r() < 0.05 ? Compression.GZIP : Compression.None,
    firstOffset: Long.fromValue(String(BigInt(firstOffset))),
    firstTimestamp,
    maxTimestamp: firstTimestamp + 5000,
    partitionLeaderEpoch: Math.floor(r() * 10),
    lastOffsetDelta: Math.max(0, offsetDelta - 1),
    transactional: r() < 0.3,
    producerId: Long.fromValue(r() < 0.5 ? -1 : Math.floor(r() * 1e6)),
    producerEpoch: Math.floor(r() * 5),
    firstSequence: Math.floor(r() * 1000),
    records,
  });
  const buf = Buffer.from(enc.buffer);
  let attributes = buf.readInt16BE(ATTRIBUTES_AT);
  if (r() < 0.1) attributes |= 0x20; // control batch
  if (r() < 0.1) attributes |= 0x08; // log append time
  buf.writeInt16BE(attributes, ATTRIBUTES_AT);
  if (r() < 0.02) buf.writeInt32BE(-1 - Math.floor(r() * 3), 8 + 4 + 49 - 4); // record count -1, -2, -3
  return buf;
}

/** Decodes record batches from `messages` as kafkajs' Fetch decoder does; errors become values. */
async function decodeAll(messages: Buffer, decode: (d: unknown) => Promise<unknown>): Promise<unknown[]> {
  const d = new Decoder(messages);
  const out: unknown[] = [];
  while (d.canReadBytes(49)) {
    try {
      out.push(await decode(d));
    } catch (e) {
      out.push({ error: (e as Error).name, message: (e as Error).message, at: d.offset });
      if ((e as Error).name === 'KafkaJSPartialMessageError') break;
      break;
    }
  }
  out.push({ endOffset: d.offset });
  return out;
}

describe('kafkajs fast fetch decoder (same record objects as kafkajs, fewer allocations)', () => {
  it('is installed in the test process (kafkajs loaded after it)', () => {
    assert.equal(fastFetchInstalled(), true);
    assert.notEqual(kafkajsRecordBatchDecoder(), null);
  });

  it('decodes 2,000 generated fetch responses exactly like kafkajs, truncated ones and odd batches included', async function () {
    this.timeout(120_000);
    const own = kafkajsRecordBatchDecoder()!;
    let records = 0;
    let fast = 0;
    const before = { ...decodedBatches };
    for (let seed = 1; seed <= 2000; seed++) {
      const r = rng(seed);
      const batches: Buffer[] = [];
      const n = 1 + Math.floor(r() * 4);
      for (let i = 0; i < n; i++) batches.push(await genBatch(r));
      let messages = Buffer.concat(batches);
      // maxBytes cuts the last batch of a response anywhere.
      if (r() < 0.3) messages = messages.subarray(0, Math.floor(r() * messages.length));
      const expected = await decodeAll(messages, own as (d: unknown) => Promise<unknown>);
      const actual = await decodeAll(messages, decodeRecordBatch as (d: unknown) => Promise<unknown>);
      assert.deepStrictEqual(actual, expected, `seed ${seed}`);
      for (const b of expected) records += ((b as { records?: unknown[] }).records ?? []).length;
      fast += batches.length;
    }
    assert.ok(records > 20_000, `a meaningful number of records compared (${records} in ${fast} batches)`);
    // Both paths ran: most batches decoded here, the odd ones (compressed, cut, unsafe) by kafkajs.
    const here = decodedBatches.fast - before.fast;
    const there = decodedBatches.kafkajs - before.kafkajs;
    assert.ok(here > 0.6 * fast && there > 0.05 * fast, `decoded here ${here}, by kafkajs ${there}, of ${fast} batches`);
  });

  it('shares one batchContext among a batch\'s records, as kafkajs does', async () => {
    const r = rng(7);
    let buf: Buffer;
    do buf = await genBatch(r); while (buf.readInt16BE(ATTRIBUTES_AT) % 8 !== 0 || buf.readInt32BE(57) < 2);
    const out = await decodeRecordBatch(new Decoder(buf)) as { records: Array<{ batchContext: unknown }> };
    assert.ok(out.records.length >= 2);
    assert.equal(out.records[0].batchContext, out.records[1].batchContext);
  });
});
