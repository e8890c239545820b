import { generateAuditStream } from '../../test/helpers/audit-generator';
import { rawKey } from './kafka-util';

/** One raw-topic record as every client under test sends it: Buffers only, one header. */
export interface RawMessage {
  key: Buffer;
  value: Buffer;
  namespace: Buffer;
}

/** Same generator and seed as the pre-filled raw topic: the producers send the very same records. */
export function generateRawMessages(seed: number, events: number): RawMessage[] {
  const out: RawMessage[] = [];
  for (const ev of generateAuditStream({ seed, events })) {
    out.push({ key: Buffer.from(rawKey(ev.event)), value: Buffer.from(JSON.stringify(ev.event)), namespace: Buffer.from(ev.cluster) });
  }
  return out;
}

/** Size estimate of src/ingest/send-chunked.ts (64 B of overhead per record, key, value, header). */
export function messageBytes(key: Buffer | null, value: Buffer | null, headerBytes: number): number {
  return 64 + (key?.length ?? 0) + (value?.length ?? 0) + headerBytes;
}

/** Consecutive chunks whose estimate stays under maxBytes, as sendChunked cuts a send. */
export function chunkBySize<T>(items: T[], size: (t: T) => number, maxBytes = 512 * 1024): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const b = size(it);
    if (bytes + b > maxBytes && bytes > 0) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(it);
    bytes += b;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
