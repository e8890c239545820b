import { IHeaders, Message } from 'kafkajs';
import { BadInputError } from './errors';

export interface SourceRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders;
  timestamp?: string;
}

/**
 * A dead-letter record keeps the original key, bytes and headers and adds error headers, so it
 * can be inspected and replayed as it was.
 */
export function deadLetter(src: SourceRecord, err: BadInputError, item: number | null): Message {
  const headers: IHeaders = { ...(src.headers ?? {}) };
  headers['kade.error.class'] = err.name;
  headers['kade.error.reason'] = err.reason;
  headers['kade.error.message'] = err.message.slice(0, 1000);
  headers['kade.source.topic'] = src.topic;
  headers['kade.source.partition'] = String(src.partition);
  headers['kade.source.offset'] = src.offset;
  if (item !== null) headers['kade.error.item'] = String(item);
  return { key: src.key, value: src.value, headers, timestamp: src.timestamp };
}

export function headerString(headers: IHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}
