/**
 * A cheaper Produce request encoder for kafkajs 2.2.4, byte for byte the same as kafkajs' own.
 *
 * kafkajs encodes a Produce request in layers, each a fresh zero-filled Encoder that the next
 * layer copies: per record an Encoder (512 bytes allocated), a Buffer per varint, BigInt Long
 * arithmetic for the timestamp delta varlong (several objects per record); then the record batch
 * body, the batch, the record set, the partition, the topic and the request each copy all bytes
 * again, growing by copying; the CRC32C is a table loop one byte at a time. The router's profile
 * had this path at roughly a fifth of its CPU.
 *
 * The replacement measures the whole request first, allocates one buffer, writes every field once
 * and runs a slicing-by-8 CRC32C over the batch body. For uncompressed batches of plain messages
 * (key/value Buffer, string or null; headers of Buffer or string values; integer timestamp
 * deltas) it writes exactly the bytes kafkajs writes (test/unit/kafkajs-fast-produce.test.ts
 * compares the two on thousands of generated requests); anything else (compression, other value
 * types, odd headers, a write that does not fit) goes to kafkajs' own encoder, which also raises
 * kafkajs' own errors. It also replaces `producer/groupMessagesPerPartition`, which copies the
 * partition's array for each message (quadratic in a partition's share of a send), by one that
 * appends: same object, same arrays, same order.
 *
 * kafkajs binds groupMessagesPerPartition when its producer module loads, and the Produce v4-v7
 * requests bind the v3 one when they first load, so this module must be loaded before kafkajs:
 * src/ingest/kafkajs-read-committed.ts, which every kade entry point imports first, imports it.
 * Installed only on kafkajs 2.2.4 (what the tests prove it against); `fastProduceInstalled()`
 * says whether it is.
 */
import Module = require('node:module');

const KAFKAJS_VERSION = '2.2.4';
const V3_REQUEST = 'kafkajs/src/protocol/requests/produce/v3/request';
const GROUP_MODULE = 'kafkajs/src/producer/groupMessagesPerPartition';
const SEND_MESSAGES = 'kafkajs/src/producer/sendMessages';
const LONG_MODULE = 'kafkajs/src/utils/long';
const ENCODER_MODULE = 'kafkajs/src/protocol/encoder';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */

interface LongLike { getHighBits(): number; getLowBits(): number }
interface LongClass { fromValue(v: unknown): LongLike; fromInt(v: number): LongLike }
interface EncoderLike { buf: Buffer; offset: number; readonly buffer: Buffer; size(): number }
type EncoderClass = new (initialSize?: number) => EncoderLike;

interface ProduceMessage {
  key?: unknown;
  value?: unknown;
  headers?: unknown;
  timestamp?: unknown;
}
interface PartitionData { partition: unknown; messages: ProduceMessage[]; firstSequence?: unknown }
interface TopicData { topic: unknown; partitions: PartitionData[] }
export interface ProduceRequestArgs {
  acks: unknown;
  timeout: unknown;
  transactionalId?: unknown;
  producerId?: unknown;
  producerEpoch?: unknown;
  compression?: unknown;
  topicData: TopicData[];
}
interface ProduceRequest { apiKey: number; apiVersion: number; apiName: string; expectResponse(): boolean; encode(): Promise<EncoderLike> }
type ProduceRequestFactory = (args: ProduceRequestArgs) => ProduceRequest;

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), slicing by 8: the same function as kafkajs' recordBatch/crc32C.

const CRC_TABLES: Int32Array[] = (() => {
  const t: Int32Array[] = [];
  for (let k = 0; k < 8; k++) t.push(new Int32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let b = 0; b < 8; b++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0][n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[0][n];
    for (let k = 1; k < 8; k++) {
      c = t[0][c & 0xff] ^ (c >>> 8);
      t[k][n] = c;
    }
  }
  return t;
})();

/** CRC32C of buf[start, end) as an unsigned 32-bit number. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES;
  let crc = -1;
  let i = start;
  const end8 = start + ((end - start) & ~7);
  while (i < end8) {
    const a = crc ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    crc = t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24]
      ^ t3[buf[i + 4]] ^ t2[buf[i + 5]] ^ t1[buf[i + 6]] ^ t0[buf[i + 7]];
    i += 8;
  }
  while (i < end) crc = t0[(crc ^ buf[i++]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Sizes and writes, with the same integer expressions as kafkajs' Encoder.

/** Not for the fast path: kafkajs' own encoder takes the request. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('not a plain produce request');

function sizeOfVarInt(value: number): number {
  let v = (value << 1) ^ (value >> 31);
  let bytes = 1;
  while ((v & 0xffffff80) !== 0) {
    bytes += 1;
    v >>>= 7;
  }
  return bytes;
}

/** Zigzag of a safe integer, as a non-negative safe integer (kafkajs: BigInt zigzag64). */
function zigzag64(value: number): number {
  if (!Number.isSafeInteger(value) || value > 2 ** 51 || value < -(2 ** 51)) throw UNSUPPORTED;
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

function sizeOfUVarLong(z: number): number {
  let bytes = 1;
  while (z >= 128) {
    bytes += 1;
    z = Math.floor(z / 128);
  }
  return bytes;
}

/** Byte length of a record key, value or header value; -1 for null. Only Buffer, string and null. */
function bytesLength(v: unknown): number {
  if (v === null || v === undefined) return -1;
  if (Buffer.isBuffer(v)) return v.length;
  if (typeof v === 'string') return Buffer.byteLength(v);
  throw UNSUPPORTED;
}

class Writer {
  offset = 0;
  constructor(readonly buf: Buffer) {}

  uvarint(value: number): void {
    const buf = this.buf;
    while ((value & 0xffffff80) !== 0) {
      buf[this.offset++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[this.offset++] = value & 0x7f;
  }

  varint(value: number): void {
    this.uvarint((value << 1) ^ (value >> 31));
  }

  uvarlong(z: number): void {
    const buf = this.buf;
    while (z >= 128) {
      buf[this.offset++] = (z % 128) | 0x80;
      z = Math.floor(z / 128);
    }
    buf[this.offset++] = z;
  }

  /** A key, value or header value of known length (from bytesLength). */
  varintBytes(v: unknown, length: number): void {
    this.varint(length);
    if (length < 0) return;
    if (Buffer.isBuffer(v)) {
      v.copy(this.buf, this.offset);
    } else if (this.buf.write(v as string, this.offset, length, 'utf8') !== length) {
      throw UNSUPPORTED;
    }
    this.offset += length;
  }

  int8(v: unknown): void { this.offset = this.buf.writeInt8(v as number, this.offset); }
  int16(v: unknown): void { this.offset = this.buf.writeInt16BE(v as number, this.offset); }
  int32(v: unknown): void { this.offset = this.buf.writeInt32BE(v as number, this.offset); }
  uint32(v: number): void { this.offset = this.buf.writeUInt32BE(v, this.offset); }
  int64(l: LongLike): void {
    this.buf.writeInt32BE(l.getHighBits(), this.offset);
    this.buf.writeInt32BE(l.getLowBits(), this.offset + 4);
    this.offset += 8;
  }

  /** A nullable int16-length string (the caller checked string or null). */
  string(v: string | null, length: number): void {
    if (v === null) {
      this.int16(-1);
      return;
    }
    this.int16(length);
    if (this.buf.write(v, this.offset, length, 'utf8') !== length) throw UNSUPPORTED;
    this.offset += length;
  }
}

// ---------------------------------------------------------------------------------------------
// The request

interface PlannedRecord { tsDelta: number; key: number; value: number; headerKeys: string[] | null; headerValues: unknown[] | null; headerKeyLens: number[] | null; headerValueLens: number[] | null; body: number }
interface PlannedPartition { data: PartitionData; firstTimestamp: LongLike; maxTimestamp: LongLike; records: PlannedRecord[]; recordsBytes: number }
interface PlannedTopic { topic: string; topicBytes: number; partitions: PlannedPartition[] }

/** Batch header fields from Attributes to the record count (int16 + int32 + 3 int64 + int16 + int32 + int32). */
const BATCH_BODY_HEADER = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;
/** FirstOffset (int64) + Length (int32) + PartitionLeaderEpoch (int32) + Magic (int8) + CRC (uint32). */
const BATCH_HEADER = 8 + 4 + 4 + 1 + 4;

function planRecord(message: ProduceMessage, offsetDelta: number, dateNow: number, firstTimestamp: unknown): PlannedRecord {
  if (message === null || typeof message !== 'object') throw UNSUPPORTED;
  // kafkajs: timestampDelta: (message.timestamp || dateNow) - firstTimestamp, a varlong of a BigInt.
  const tsDelta = zigzag64(((message.timestamp as number) || dateNow) - (firstTimestamp as number));
  const key = bytesLength(message.key);
  const value = bytesLength(message.value);
  let headerKeys: string[] | null = null;
  let headerValues: unknown[] | null = null;
  let headerKeyLens: number[] | null = null;
  let headerValueLens: number[] | null = null;
  let headersBytes = 1; // varint count 0
  const headers = message.headers === undefined ? {} : message.headers;
  if (headers === null || typeof headers !== 'object') throw UNSUPPORTED;
  const names = Object.keys(headers);
  if (names.length > 0) {
    headerKeys = [];
    headerValues = [];
    headerKeyLens = [];
    headerValueLens = [];
    for (const name of names) {
      const v = (headers as Record<string, unknown>)[name];
      const values = Array.isArray(v) ? v : [v];
      for (const hv of values) {
        const hvLen = bytesLength(hv);
        if (hvLen < 0) throw UNSUPPORTED; // kafkajs cannot encode a null header value (it throws)
        const nameLen = Buffer.byteLength(name);
        headerKeys.push(name);
        headerValues.push(hv);
        headerKeyLens.push(nameLen);
        headerValueLens.push(hvLen);
      }
    }
    headersBytes = sizeOfVarInt(headerKeys.length);
    for (let h = 0; h < headerKeys.length; h++) {
      headersBytes += sizeOfVarInt(headerKeyLens[h]) + headerKeyLens[h] + sizeOfVarInt(headerValueLens[h]) + headerValueLens[h];
    }
  }
  const body = 1 + sizeOfUVarLong(tsDelta) + sizeOfVarInt(offsetDelta)
    + (key < 0 ? 1 : sizeOfVarInt(key) + key) + (value < 0 ? 1 : sizeOfVarInt(value) + value) + headersBytes;
  return { tsDelta, key, value, headerKeys, headerValues, headerKeyLens, headerValueLens, body };
}

function planPartition(data: PartitionData, Long: LongClass): PlannedPartition {
  if (data === null || typeof data !== 'object' || !Array.isArray(data.messages)) throw UNSUPPORTED;
  const messages = data.messages;
  const dateNow = Date.now();
  let anyTimestamp = false;
  for (const m of messages) {
    if (m === null || typeof m !== 'object') throw UNSUPPORTED;
    if (m.timestamp != null) anyTimestamp = true;
  }
  let firstTimestamp: unknown = dateNow;
  let maxTimestamp: unknown = dateNow;
  if (anyTimestamp) {
    // As kafkajs does it, default (string) sort included.
    const messageTimestamps = messages.map((m) => m.timestamp).filter((t) => t != null).sort();
    firstTimestamp = messageTimestamps[0];
    maxTimestamp = messageTimestamps[messageTimestamps.length - 1];
  }
  const records: PlannedRecord[] = new Array(messages.length);
  let recordsBytes = 0;
  for (let i = 0; i < messages.length; i++) {
    const r = planRecord(messages[i], i, dateNow, firstTimestamp);
    records[i] = r;
    recordsBytes += sizeOfVarInt(r.body) + r.body;
  }
  return { data, firstTimestamp: Long.fromValue(firstTimestamp), maxTimestamp: Long.fromValue(maxTimestamp), records, recordsBytes };
}

function writeRecord(w: Writer, message: ProduceMessage, r: PlannedRecord, offsetDelta: number): void {
  w.varint(r.body);
  w.buf[w.offset++] = 0; // attributes
  w.uvarlong(r.tsDelta);
  w.varint(offsetDelta);
  w.varintBytes(message.key, r.key);
  w.varintBytes(message.value, r.value);
  if (r.headerKeys === null) {
    w.buf[w.offset++] = 0;
    return;
  }
  w.varint(r.headerKeys.length);
  for (let h = 0; h < r.headerKeys.length; h++) {
    w.varintBytes(r.headerKeys[h], r.headerKeyLens![h]);
    w.varintBytes(r.headerValues![h], r.headerValueLens![h]);
  }
}

/**
 * The Produce v3 request body (what kafkajs' `encode()` returns) in one buffer. Throws
 * Unsupported for anything the fast path does not take.
 */
export function encodeProduceV3(args: ProduceRequestArgs, Long: LongClass): Buffer {
  const acks = args.acks;
  const timeout = args.timeout;
  const transactionalId = args.transactionalId === undefined ? null : args.transactionalId;
  const producerId = Long.fromValue(args.producerId === undefined ? Long.fromInt(-1) : args.producerId);
  const producerEpoch = args.producerEpoch === undefined ? 0 : args.producerEpoch;
  const compression = args.compression === undefined ? 0 : args.compression;
  if (compression !== 0) throw UNSUPPORTED;
  if (transactionalId !== null && typeof transactionalId !== 'string') throw UNSUPPORTED;
  if (!Array.isArray(args.topicData)) throw UNSUPPORTED;
  const attributes = transactionalId ? 16 : 0; // compression none | timestamp type 0 | transactional bit

  let size = 2 + (transactionalId === null ? 0 : Buffer.byteLength(transactionalId)) + 2 + 4 + 4;
  const topics: PlannedTopic[] = [];
  for (const td of args.topicData) {
    if (td === null || typeof td !== 'object' || typeof td.topic !== 'string' || !Array.isArray(td.partitions)) throw UNSUPPORTED;
    const topicBytes = Buffer.byteLength(td.topic);
    const partitions: PlannedPartition[] = [];
    size += 2 + topicBytes + 4;
    for (const pd of td.partitions) {
      const p = planPartition(pd, Long);
      partitions.push(p);
      size += 4 + 4 + BATCH_HEADER + BATCH_BODY_HEADER + p.recordsBytes;
    }
    topics.push({ topic: td.topic, topicBytes, partitions });
  }

  const w = new Writer(Buffer.allocUnsafe(size));
  w.string(transactionalId, transactionalId === null ? 0 : Buffer.byteLength(transactionalId));
  w.int16(acks);
  w.int32(timeout);
  w.int32(topics.length);
  for (const t of topics) {
    w.string(t.topic, t.topicBytes);
    w.int32(t.partitions.length);
    for (const p of t.partitions) {
      const batchBytes = 4 + 1 + 4 + BATCH_BODY_HEADER + p.recordsBytes;
      w.int32(p.data.partition);
      w.int32(8 + 4 + batchBytes); // recordBatch.size()
      w.int64(Long.fromInt(0)); // firstOffset
      w.int32(batchBytes);
      w.int32(0); // partitionLeaderEpoch
      w.int8(2); // magic
      const crcAt = w.offset;
      w.offset += 4;
      const bodyStart = w.offset;
      w.int16(attributes);
      w.int32(p.records.length - 1); // lastOffsetDelta
      w.int64(p.firstTimestamp);
      w.int64(p.maxTimestamp);
      w.int64(producerId);
      w.int16(producerEpoch);
      w.int32(p.data.firstSequence);
      w.int32(p.records.length);
      const messages = p.data.messages;
      for (let i = 0; i < p.records.length; i++) writeRecord(w, messages[i], p.records[i], i);
      if (w.offset - bodyStart !== BATCH_BODY_HEADER + p.recordsBytes) throw UNSUPPORTED;
      w.buf.writeUInt32BE(crc32c(w.buf, bodyStart, w.offset), crcAt);
    }
  }
  // Every byte of the (uninitialized) buffer is written, or the buffer is dropped.
  if (w.offset !== size) throw UNSUPPORTED;
  return w.buf;
}

// ---------------------------------------------------------------------------------------------
// groupMessagesPerPartition

type Partitioner = (args: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number;

/** kafkajs' groupMessagesPerPartition, appending instead of copying the partition's array per message. */
export function groupMessagesPerPartition(
  { topic, partitionMetadata, messages, partitioner }: { topic: string; partitionMetadata: unknown[]; messages: unknown[]; partitioner: Partitioner },
): Record<string, unknown[]> {
  if (partitionMetadata.length === 0) return {};
  const result: Record<string, unknown[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const current = result[partition];
    if (current === undefined) result[partition] = [message];
    else current.push(message);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Installation

let installed = false;

/** kafkajs' own Produce v3 request factory (loaded before the replacement took its place). */
export let kafkajsProduceV3: ProduceRequestFactory | null = null;

/** kade's Produce v3 request factory: kafkajs' request object with the fast `encode`, kafkajs' encode as the fallback. */
export function fastProduceV3(original: ProduceRequestFactory, Long: LongClass, Encoder: EncoderClass): ProduceRequestFactory {
  return (args) => {
    const request = original(args);
    const slow = request.encode;
    request.encode = async () => {
      let buf: Buffer;
      try {
        buf = encodeProduceV3(args, Long);
      } catch {
        // Not a plain request (or a value kafkajs rejects): kafkajs encodes it, or throws its own error.
        return slow();
      }
      const e = new Encoder(0);
      e.buf = buf;
      e.offset = buf.length;
      return e;
    };
    return request;
  };
}

function put(filename: string, exports: unknown): void {
  const m = new Module(filename);
  m.filename = filename;
  m.loaded = true;
  m.exports = exports;
  require.cache[filename] = m;
}

function install(): void {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== KAFKAJS_VERSION) return;
  // Too late if kafkajs' producer already bound its grouping function, or a v4+ request the v3 one.
  if (require.cache[require.resolve(SEND_MESSAGES)] !== undefined) return;
  const v3 = require.resolve(V3_REQUEST);
  if (require.cache[v3] !== undefined) return;
  kafkajsProduceV3 = require(V3_REQUEST) as ProduceRequestFactory;
  const Long = require(LONG_MODULE) as LongClass;
  const Encoder = require(ENCODER_MODULE) as EncoderClass;
  put(v3, fastProduceV3(kafkajsProduceV3, Long, Encoder));
  put(require.resolve(GROUP_MODULE), groupMessagesPerPartition);
  installed = true;
}

install();

/** Whether kafkajs in this process encodes Produce requests with the replacement. */
export function fastProduceInstalled(): boolean {
  return installed && (require(V3_REQUEST) as unknown) !== kafkajsProduceV3
    && (require(GROUP_MODULE) as unknown) === groupMessagesPerPartition;
}
