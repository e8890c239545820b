import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { Kafka, Message } from 'kafkajs';
import { isObject } from './normalize';
import { createProducer } from './kafka';
import { sendChunked } from './send-chunked';

export interface ReplayOptions {
  topic: string;
  /** data_stream.namespace header value for every record (the source cluster). */
  namespace?: string;
  namespaceHeader: string;
  batchSize?: number;
}

/** Kafka key of a raw event: its actor (username and first source IP), like a keyed shipper. */
function actorKey(line: string): string | null {
  try {
    const doc = JSON.parse(line) as unknown;
    if (!isObject(doc)) return null;
    const user = isObject(doc.user) && typeof doc.user.username === 'string' ? doc.user.username : '';
    const ip = Array.isArray(doc.sourceIPs) && typeof doc.sourceIPs[0] === 'string' ? doc.sourceIPs[0] : '';
    return `${user}|${ip}`;
  } catch {
    return null;
  }
}

/**
 * Yields one raw record value per input unit: each line of a JSON-lines file (an Event, an
 * EventList or anything else: bad lines are sent as they are, for the router to dead-letter),
 * or each element of a file that holds one JSON array.
 */
export async function* readRecords(source: string): AsyncGenerator<string> {
  if (source !== '-') {
    const head = readFileSync(source, { encoding: 'utf8', flag: 'r' }).slice(0, 1).trimStart();
    if (head === '[') {
      const doc = JSON.parse(readFileSync(source, 'utf8')) as unknown[];
      for (const item of doc) yield JSON.stringify(item);
      return;
    }
  }
  const input: Readable = source === '-' ? process.stdin : createReadStream(source);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let first = true;
  for await (const line of lines) {
    if (line.trim().length === 0) continue;
    if (first && source !== '-') {
      first = false;
      try {
        JSON.parse(line);
      } catch {
        // Not JSON lines: one pretty-printed document (an Event, an EventList or an array).
        lines.close();
        const doc = JSON.parse(readFileSync(source, 'utf8')) as unknown;
        for (const item of Array.isArray(doc) ? doc : [doc]) yield JSON.stringify(item);
        return;
      }
    }
    yield line;
  }
}

/** Produces the records of the given files (or - for stdin) into the raw topic; returns the count. */
export async function replay(kafka: Kafka, sources: string[], opts: ReplayOptions): Promise<number> {
  const producer = createProducer(kafka);
  await producer.connect();
  const batchSize = opts.batchSize ?? 2000;
  let sent = 0;
  let batch: Message[] = [];
  const headers = opts.namespace === undefined ? undefined : { [opts.namespaceHeader]: opts.namespace };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await sendChunked(producer, [{ topic: opts.topic, messages: batch }], { acks: -1 });
    sent += batch.length;
    batch = [];
  };
  try {
    for (const source of sources) {
      for await (const value of readRecords(source)) {
        batch.push({ key: actorKey(value), value, headers });
        if (batch.length >= batchSize) await flush();
      }
    }
    await flush();
  } finally {
    await producer.disconnect();
  }
  return sent;
}
