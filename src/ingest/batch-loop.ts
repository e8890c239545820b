import { Batch, Consumer, EachBatchPayload } from 'kafkajs';

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
