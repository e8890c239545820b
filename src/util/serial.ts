/** Runs async tasks one at a time, in call order (a batch and a timer never interleave). */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task, task);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * Tasks of one key run one at a time, in call order; tasks of different keys run concurrently.
 * An exclusive task (runAll) waits for every task queued before it, and every task queued after
 * it waits for it: a barrier (a rebalance, for the detector's partitions).
 */
export class KeyedSerial<K> {
  private barrier: Promise<unknown> = Promise.resolve();
  private readonly tails = new Map<K, Promise<unknown>>();

  run<T>(key: K, task: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? this.barrier).then(task, task);
    this.tails.set(key, next.catch(() => undefined));
    return next;
  }

  runAll<T>(task: () => Promise<T>): Promise<T> {
    const next = Promise.all([this.barrier, ...this.tails.values()]).then(task, task);
    this.barrier = next.catch(() => undefined);
    this.tails.clear();
    return next;
  }
}
