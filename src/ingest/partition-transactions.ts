import { Kafka, Producer, TopicMessages } from 'kafkajs';
import { Logger } from '../ops/logger';
import { DependencyError } from './errors';
import { FastDefaultPartitioner } from './partitioner';
import { sendChunked } from './send-chunked';

/**
 * Consume-transform-produce in Kafka transactions, one transactional producer per input
 * partition. The transactional id is derived from the input partition, so when a partition moves
 * to another router, the new owner's producer fences the old one: a router that lost its
 * partition in a rebalance (a zombie) can no longer commit output or offsets for it.
 */
export class PartitionTransactions {
  private readonly producers = new Map<number, Promise<Producer>>();

  constructor(
    private readonly kafka: Kafka,
    private readonly idPrefix: string,
    private readonly consumerGroupId: string,
    private readonly log: Logger,
  ) {}

  private producer(partition: number): Promise<Producer> {
    let p = this.producers.get(partition);
    if (p === undefined) {
      p = (async () => {
        const producer = this.kafka.producer({
          transactionalId: `${this.idPrefix}-${partition}`,
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: FastDefaultPartitioner,
          // A transaction that follows a commit at once is told to retry: retry fast.
          retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 20, maxRetryTime: 5000 },
        });
        await producer.connect();
        return producer;
      })();
      this.producers.set(partition, p);
      p.catch(() => this.producers.delete(partition));
    }
    return p;
  }

  /**
   * Replaces the partition's producer with a fresh, initialized one. Its InitProducerId fences
   * every earlier producer of the transactional id (this process's or a previous owner's) and
   * returns only once that id's last transaction is complete, committed or aborted: a committed
   * offset read after this is stable. (KIP-447 gives the Java client that with require_stable
   * offset fetches; kafkajs' OffsetFetch cannot ask for it and may answer the offset from before a
   * commit still in flight.)
   */
  async renew(partition: number): Promise<void> {
    const old = this.producers.get(partition);
    this.producers.delete(partition);
    if (old !== undefined) void old.then((p) => p.disconnect()).catch(() => undefined);
    const producer = await this.producer(partition);
    // kafkajs initializes the transactional id on the first transaction(); aborting a transaction
    // that sent nothing sends no request.
    const tx = await producer.transaction();
    await tx.abort();
  }

  /**
   * Writes the batch's output and commits the batch's input offset in one transaction: either
   * both become visible (to read_committed consumers) or neither.
   */
  async commit(input: { topic: string; partition: number; nextOffset: string }, output: TopicMessages[]): Promise<void> {
    const producer = await this.producer(input.partition);
    const tx = await producer.transaction();
    try {
      await sendChunked(tx, output, { acks: -1 });
      await tx.sendOffsets({
        consumerGroupId: this.consumerGroupId,
        topics: [{ topic: input.topic, partitions: [{ partition: input.partition, offset: input.nextOffset }] }],
      });
      await tx.commit();
    } catch (cause) {
      try {
        await tx.abort();
      } catch {
        // A fenced or broken producer cannot abort; the broker aborts on its own timeout.
      }
      // Start the next attempt from a fresh producer (re-initialized transactions).
      this.producers.delete(input.partition);
      void producer.disconnect().catch(() => undefined);
      this.log.warn({ err: cause, partition: input.partition }, 'transaction failed; the batch will be retried');
      throw new DependencyError('kafka', `transaction for ${input.topic}[${input.partition}] failed: ${(cause as Error).message}`, { cause });
    }
  }

  async close(): Promise<void> {
    const all = [...this.producers.values()];
    this.producers.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => null))?.disconnect()));
  }
}
