import { Message, Producer, TopicMessages } from 'kafkajs';

/**
 * kafkajs puts all messages of one send for one partition into a single record batch and never
 * splits it, but the broker rejects a batch above max.message.bytes (1 MB by default). Sends in
 * chunks whose payload stays under `maxBytes`, one after the other, in order.
 */
export async function sendChunked(
  producer: Pick<Producer, 'sendBatch'>,
  topicMessages: TopicMessages[],
  opts: { acks: number; maxBytes?: number },
): Promise<void> {
  const maxBytes = opts.maxBytes ?? 512 * 1024;
  let chunk: TopicMessages[] = [];
  let size = 0;
  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    await producer.sendBatch({ topicMessages: chunk, acks: opts.acks });
    chunk = [];
    size = 0;
  };
  for (const tm of topicMessages) {
    let current: Message[] = [];
    for (const m of tm.messages) {
      const bytes = messageSize(m);
      if (size + bytes > maxBytes && size > 0) {
        if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
        current = [];
        await flush();
      }
      current.push(m);
      size += bytes;
    }
    if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
  }
  await flush();
}

function messageSize(m: Message): number {
  const len = (v: Buffer | string | null | undefined): number => (v === null || v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  let n = 64 + len(m.key) + len(m.value);
  if (m.headers !== undefined) for (const [k, v] of Object.entries(m.headers)) n += k.length + (Array.isArray(v) ? v.reduce((s: number, x) => s + len(x as Buffer | string), 0) : len(v as Buffer | string | undefined));
  return n;
}
