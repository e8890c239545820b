import { Batch, Consumer, EachBatchPayload } from 'kafkajs';
import { Serial } from '../util/serial';

export interface BatchHandler {
  /** Processes a batch; on return its side effects are durable (offsets may be committed). */
  (batch: Batch, payload: EachBatchPayload): Promise<void>;
}

/**
 * The batch loop owns the offset discipline: auto-resolve off, resolveOffset only after the
 * handler made the batch's effects durable, then heartbeat and commit; stop early when the
 * consumer stops or the batch went stale in a rebalance. A handler error leaves the batch
 * unresolved, so Kafka redelivers it.
 */
export async function runBatchLoop(
  consumer: Consumer, topic: string, handle: BatchHandler,
  opts: { autoCommit?: boolean; partitionsConsumedConcurrently?: number } = {},
): Promise<void> {
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    // autoCommit false: the handler commits the offsets itself (inside a Kafka transaction).
    autoCommit: opts.autoCommit ?? true,
    eachBatchAutoResolve: false,
    // Batches of one partition are always handled one after the other, whatever this says.
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
    eachBatch: async (payload) => {
      const { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale } = payload;
      if (!isRunning() || isStale() || batch.messages.length === 0) return;
      await handle(batch, payload);
      // The handler sought the partition elsewhere (a rebuild): the batch is not done.
      if (isStale()) return;
      resolveOffset(batch.lastOffset());
      await commitOffsetsIfNecessary();
      await heartbeat();
    },
  });
}

/** Kafka's byte size of a batch's records as far as kade holds them (keys and values). */
function batchBytes(batch: Batch): number {
  let n = 0;
  for (const m of batch.messages) n += (m.value?.length ?? 0) + (m.key?.length ?? 0);
  return n;
}

/**
 * A batch loop whose fetches overlap the processing of the batches fetched before. kafkajs'
 * fetcher fetches again only once eachBatch has returned for every batch of the last fetch
 * (node_modules/kafkajs/src/consumer/fetcher.js), so a handler that processes in eachBatch
 * alternates fetching with processing. Here eachBatch queues a batch on `serial`, resolves its
 * offset at once and returns while the queue holds at most `prefetchBytes` (0: it waits for its
 * own batch, as runBatchLoop). A queued batch is prepared (decoded) only when its turn comes, so
 * what preparing builds is short-lived (decoding when queued held 24 MiB more at peak).
 *
 * Resolving is only the fetch position: offsets are committed by the stage itself once the
 * batch's effects are durable (autoCommit off), so nothing queued is ever committed unprocessed.
 * Since Kafka then redelivers nothing by itself, the loop does: a batch whose processing fails
 * seeks its partition back to the batch and drops that partition's batches queued after it; its
 * error is thrown from the next eachBatch, so kafkajs backs off and retries as it does when
 * eachBatch fails. seek() (a rebuild) and dropAll() (a rebalance) drop queued batches the same
 * way: a queued batch holds its partition's generation, and runs only if that is still current.
 */
export class PrefetchingBatchLoop {
  private readonly generations = new Map<number, number>();
  private epoch = 0;
  private queuedBytes = 0;
  private waiting: Array<() => void> = [];
  private failure: { error: unknown } | null = null;
  private closed = false;

  constructor(
    private readonly consumer: Consumer,
    private readonly topic: string,
    private readonly serial: Serial,
    private readonly prefetchBytes: number,
  ) {}

  /** Sends a partition back to `offset`; its batches queued so far are dropped. */
  seek(partition: number, offset: number): void {
    this.generations.set(partition, (this.generations.get(partition) ?? 0) + 1);
    this.consumer.seek({ topic: this.topic, partition, offset: String(offset) });
  }

  /** Drops every queued batch (the group rebalanced: the consumer starts over from the commits). */
  dropAll(): void {
    this.epoch++;
  }

  /**
   * Queues nothing more (shutdown): what the consumer still fetches is left unresolved, what is
   * queued is still processed.
   */
  close(): void {
    this.closed = true;
    this.wake();
  }

  /**
   * Whether what was fetched of a partition until now is still to be processed: false once the
   * partition was sought or the group rebalanced.
   */
  stillCurrent(partition: number): () => boolean {
    const epoch = this.epoch;
    const generation = this.generations.get(partition) ?? 0;
    return () => epoch === this.epoch && generation === (this.generations.get(partition) ?? 0);
  }

  /** Bytes of the batches queued and not processed yet. */
  queued(): number {
    return this.queuedBytes;
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve();
  }

  async run<T>(prepare: (batch: Batch) => T, process: (batch: Batch, prepared: T) => Promise<void>): Promise<void> {
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || this.closed || batch.messages.length === 0) return;
        this.throwFailure();
        const { partition } = batch;
        const current = this.stillCurrent(partition);
        const bytes = batchBytes(batch);
        this.queuedBytes += bytes;
        void this.serial.run(async () => {
          try {
            // Prepared when its turn comes, not when queued: what it builds dies young.
            if (current()) await process(batch, prepare(batch));
          } catch (error) {
            if (current()) {
              this.seek(partition, Number(batch.firstOffset()));
              this.failure = { error };
            }
          } finally {
            this.queuedBytes -= bytes;
            this.wake();
          }
        });
        resolveOffset(batch.lastOffset());
        while (this.queuedBytes > this.prefetchBytes && isRunning() && !this.closed) {
          await new Promise<void>((resolve) => this.waiting.push(resolve));
        }
        this.throwFailure();
        await heartbeat();
      },
    });
  }

  private throwFailure(): void {
    const f = this.failure;
    if (f === null) return;
    this.failure = null;
    throw f.error;
  }
}
