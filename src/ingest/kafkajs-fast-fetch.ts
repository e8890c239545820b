/**
 * A cheaper record batch decoder for kafkajs 2.2.4 consumers, giving the same objects as kafkajs'
 * own (`kafkajs/src/protocol/recordBatch/v0/decoder.js`).
 *
 * For each record kafkajs slices a Buffer and wraps it in a new Decoder, reads the timestamp delta
 * as a varlong in BigInt arithmetic (a BigInt per byte, shift, add, zigzag), then parses the
 * batch's first timestamp and first offset from their decimal strings again (`Long.fromValue`),
 * adds the deltas and prints both back to strings, and builds the headers with a spread per
 * header. The detector's profile had kafkajs at 12 % of its CPU, much of it here.
 *
 * The replacement reads the records straight from the batch's bytes, in plain numbers where the
 * values are safe integers (offsets and timestamps are: Kafka offsets and epoch milliseconds are
 * far below 2^53), and prints the same decimal strings. Every record object has the same
 * properties, in the same order, as kafkajs', and the records of a batch share one batchContext
 * object as there. Anything else goes to kafkajs' own decoder, which also raises kafkajs' own
 * errors: a compressed batch, a truncated one (KafkaJSPartialMessageError, which the fetch
 * decoder expects at the end of a response), a record whose fields overrun its length, a
 * varlong over 7 bytes, a value outside the safe integers. `test/unit/kafkajs-fast-fetch.test.ts`
 * compares the two on thousands of generated batches.
 *
 * kafkajs' Fetch decoder binds this module when it loads, so this one must be loaded before
 * kafkajs: src/ingest/kafkajs-read-committed.ts, which every kade entry point imports first,
 * imports it. Installed only on kafkajs 2.2.4; `fastFetchInstalled()` says whether it is.
 */
import { putModule } from './kafkajs-module-cache';

const KAFKAJS_VERSION = '2.2.4';
const DECODER_MODULE = 'kafkajs/src/protocol/recordBatch/v0/decoder';
const FETCH_DECODE_MODULE = 'kafkajs/src/protocol/requests/fetch/v4/decodeMessages';

/* eslint-disable @typescript-eslint/no-require-imports */

/** kafkajs' Decoder, as far as this module uses it. */
interface KafkajsDecoder { buffer: Buffer; offset: number }
type RecordBatchDecoder = (fetchDecoder: KafkajsDecoder) => Promise<unknown>;

const TIMESTAMP_TYPE_FLAG_MASK = 0x8;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;
const COMPRESSION_CODEC_MASK = 0x7;
/** kafkajs' TimestampTypes. */
const CREATE_TIME = 0;
const LOG_APPEND_TIME = 1;
/** FirstOffset (8) + Length (4): then Length bytes of batch. */
const BATCH_PREFIX = 12;
/** From PartitionLeaderEpoch to the record count, inclusive: 4+1+4+2+4+8+8+8+2+4+4. */
const BATCH_HEADER = 49;

let kafkajsDecoder: RecordBatchDecoder | null = null;
let installed = false;
/** Batches decoded here and handed to kafkajs' own decoder, since the process started. */
export const decodedBatches = { fast: 0, kafkajs: 0 };

/** Thrown inside the fast path when the batch is not one it decodes exactly like kafkajs. */
class NotPlain extends Error {}
const NOT_PLAIN = new NotPlain('not a plain batch');

/** A signed 64-bit big-endian integer as a safe Number, or NOT_PLAIN. */
function readInt64(buf: Buffer, pos: number): number {
  const hi = buf.readInt32BE(pos);
  const lo = buf.readUInt32BE(pos + 4);
  const n = hi * 4294967296 + lo;
  if (!Number.isSafeInteger(n)) throw NOT_PLAIN;
  return n;
}

/** Where the last varInt() or bytes() call stopped (one decoder runs at a time: no await inside). */
let at = 0;

/**
 * A zigzag varint at `pos`, as kafkajs' readVarInt reads it, within [pos, end); sets `at` past
 * it. Up to 4 bytes (values up to 2^27 in magnitude: lengths, deltas), else NOT_PLAIN.
 */
function varInt(buf: Buffer, pos: number, end: number): number {
  let v = 0;
  let shift = 0;
  let b: number;
  do {
    if (pos >= end || shift > 21) throw NOT_PLAIN;
    b = buf[pos++];
    v += (b & 0x7f) << shift;
    shift += 7;
  } while (b >= 0x80);
  at = pos;
  return (v >>> 1) ^ -(v & 1);
}

/** A varint length (-1: null) and that many bytes at `pos`, sliced like readVarIntBytes; sets `at` past them. */
function bytes(buf: Buffer, pos: number, end: number): Buffer | null {
  const len = varInt(buf, pos, end);
  if (len === -1) return null;
  pos = at;
  if (len < 0 || pos + len > end) throw NOT_PLAIN;
  at = pos + len;
  return buf.subarray(pos, at);
}

/**
 * Records of one uncompressed batch read from `buf` between pos and end; the same objects as
 * kafkajs' decodeRecord builds. Throws NOT_PLAIN where it would not be exact.
 */
function decodeRecords(buf: Buffer, pos: number, end: number, count: number, firstOffset: number, firstTimestamp: number,
  timestampType: number, maxTimestamp: string, isControlBatch: boolean, batchContext: object, magicByte: number): unknown[] {
  const records = new Array<unknown>(count);
  for (let r = 0; r < count; r++) {
    const len = varInt(buf, pos, end);
    pos = at;
    if (len <= 0 || pos + len > end) throw NOT_PLAIN;
    const recordEnd = pos + len;
    let p = pos;
    const attributes = buf.readInt8(p++);
    // Timestamp delta: a zigzag varlong; up to 7 bytes (49 bits) stays exact in a Number.
    let raw = 0;
    let mul = 1;
    let b: number;
    do {
      if (p >= recordEnd || mul > 2 ** 42) throw NOT_PLAIN;
      b = buf[p++];
      raw += (b & 0x7f) * mul;
      mul *= 128;
    } while (b >= 0x80);
    const timestampDelta = raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
    let timestamp: string;
    if (timestampType === LOG_APPEND_TIME && maxTimestamp) timestamp = maxTimestamp;
    else {
      const t = firstTimestamp + timestampDelta;
      if (!Number.isSafeInteger(t)) throw NOT_PLAIN;
      timestamp = String(t);
    }
    const o = firstOffset + varInt(buf, p, recordEnd);
    if (!Number.isSafeInteger(o)) throw NOT_PLAIN;
    const offset = String(o);
    const key = bytes(buf, at, recordEnd);
    const value = bytes(buf, at, recordEnd);
    p = at;
    // Headers: kafkajs folds [key, value] pairs into an object, repeated keys into arrays.
    if (p >= recordEnd) throw NOT_PLAIN;
    const headers = buf[p] === 0 ? {} : readHeaders(buf, p, recordEnd);
    records[r] = {
      magicByte, attributes, timestamp, offset, key, value, headers, isControlRecord: isControlBatch, batchContext,
    };
    pos = recordEnd;
  }
  return records;
}

type HeaderReader = (d: unknown) => { key: string; value: unknown };
let headerModules: { Decoder: new (b: Buffer) => { readVarIntArray<T>(reader: (d: unknown) => T): T[] }; HeaderDecoder: HeaderReader } | null = null;

/**
 * A record's headers from the header count on: kafkajs folds its [key, value] pairs into an
 * object (`{ ...obj, [key]: ... }`), a repeated key's values into an array. Read here when every
 * key and value lies within the record; else (and for a key "__proto__", which assignment would
 * not define as the spread does) by kafkajs' own code.
 */
function readHeaders(buf: Buffer, start: number, end: number): Record<string, unknown> {
  try {
    const count = varInt(buf, start, end);
    const obj: Record<string, unknown> = {};
    for (let i = 0; i < count; i++) {
      const k = bytes(buf, at, end);
      const value = bytes(buf, at, end);
      const name = k === null ? 'null' : k.toString('utf8');
      if (name === '__proto__') throw NOT_PLAIN;
      const prev = obj[name];
      obj[name] = prev === undefined ? value : Array.isArray(prev) ? prev.concat([value]) : [prev, value];
    }
    return obj;
  } catch (err) {
    if (!(err instanceof NotPlain)) throw err;
  }
  // Resolved once: require() resolves its path on every call (microseconds per record).
  headerModules ??= {
    Decoder: require('kafkajs/src/protocol/decoder'),
    HeaderDecoder: require('kafkajs/src/protocol/recordBatch/header/v0/decoder'),
  };
  const { Decoder, HeaderDecoder } = headerModules;
  return new Decoder(buf.subarray(start, end)).readVarIntArray(HeaderDecoder).reduce<Record<string, unknown>>(
    (obj, { key, value }) => ({
      ...obj,
      [key]: obj[key] === undefined ? value : Array.isArray(obj[key]) ? (obj[key] as unknown[]).concat([value]) : [obj[key], value],
    }),
    {},
  );
}

/** The replacement of kafkajs' record batch decoder: same signature, same result. */
export async function decodeRecordBatch(fetchDecoder: KafkajsDecoder): Promise<unknown> {
  const own = kafkajsDecoder as RecordBatchDecoder;
  const slow = (d: KafkajsDecoder): Promise<unknown> => {
    decodedBatches.kafkajs++;
    return own(d);
  };
  const buf = fetchDecoder.buffer;
  const start = fetchDecoder.offset;
  // Short or truncated batches: kafkajs decides (and throws KafkaJSPartialMessageError).
  if (buf.length - start < BATCH_PREFIX + BATCH_HEADER) return slow(fetchDecoder);
  const length = buf.readInt32BE(start + 8);
  const end = start + BATCH_PREFIX + length;
  if (length < BATCH_HEADER || end > buf.length) return slow(fetchDecoder);
  let h = start + BATCH_PREFIX;
  const attributes = buf.readInt16BE(h + 9);
  if ((attributes & COMPRESSION_CODEC_MASK) !== 0) return slow(fetchDecoder);
  let result: unknown;
  try {
    const firstOffset = readInt64(buf, start);
    const partitionLeaderEpoch = buf.readInt32BE(h);
    const magicByte = buf.readInt8(h + 4);
    h += 4 + 1 + 4 + 2;
    const lastOffsetDelta = buf.readInt32BE(h);
    const firstTimestamp = readInt64(buf, h + 4);
    const maxTimestamp = String(readInt64(buf, h + 12));
    const producerId = String(readInt64(buf, h + 20));
    const producerEpoch = buf.readInt16BE(h + 28);
    const firstSequence = buf.readInt32BE(h + 30);
    const count = buf.readInt32BE(h + 34);
    h += 38;
    const inTransaction = (attributes & TRANSACTIONAL_FLAG_MASK) > 0;
    const isControlBatch = (attributes & CONTROL_FLAG_MASK) > 0;
    const timestampType = (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? LOG_APPEND_TIME : CREATE_TIME;
    // Same properties in the same order as kafkajs' recordContext.
    const recordContext = {
      firstOffset: String(firstOffset),
      firstTimestamp: String(firstTimestamp),
      partitionLeaderEpoch,
      inTransaction,
      isControlBatch,
      lastOffsetDelta,
      producerId,
      producerEpoch,
      firstSequence,
      maxTimestamp,
      timestampType,
    };
    const records = count === -1 ? [] : count < 0 ? null : decodeRecords(buf, h, end, count, firstOffset, firstTimestamp,
      timestampType, maxTimestamp, isControlBatch, { ...recordContext, magicByte }, magicByte);
    if (records === null) throw NOT_PLAIN;
    result = { ...recordContext, records };
  } catch (err) {
    if (!(err instanceof NotPlain) && !(err instanceof RangeError)) throw err;
    // Not exact here: kafkajs decodes the batch from where it starts, as if never touched.
    fetchDecoder.offset = start;
    return slow(fetchDecoder);
  }
  fetchDecoder.offset = end;
  decodedBatches.fast++;
  return result;
}

function install(): void {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== KAFKAJS_VERSION) return;
  // Too late once the Fetch decoder bound kafkajs' own.
  if (require.cache[require.resolve(FETCH_DECODE_MODULE)] !== undefined) return;
  const filename = require.resolve(DECODER_MODULE);
  if (require.cache[filename] !== undefined) return;
  kafkajsDecoder = require(DECODER_MODULE) as RecordBatchDecoder;
  putModule(filename, decodeRecordBatch);
  installed = true;
}

install();

/** kafkajs' own record batch decoder (for the tests that compare the two), or null if not installed. */
export function kafkajsRecordBatchDecoder(): RecordBatchDecoder | null {
  return kafkajsDecoder;
}

/** Whether kafkajs in this process decodes fetched record batches with the replacement. */
export function fastFetchInstalled(): boolean {
  return installed && (require(DECODER_MODULE) as unknown) === decodeRecordBatch;
}
