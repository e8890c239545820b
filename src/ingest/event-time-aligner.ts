/**
 * Event-time alignment of input partitions (what Flink calls watermark alignment).
 *
 * Kafka fetches about the same number of bytes from each partition per round, so a partition
 * whose records are dense in event time falls behind one whose records are sparse. Over a
 * backlog the gap grows without bound, and downstream windows would see those records as late.
 * The aligner pauses a partition that runs more than `maxAheadMs` of event time ahead of the
 * slowest partition that still has a backlog, and resumes it once it is within half of that.
 * The slowest partition is never paused, so the consumer always makes progress.
 */
export interface PartitionProgress {
  /** Max event time routed from this partition (ms), or null before its first record. */
  eventTime: number | null;
  /** Records left after the last batch (high watermark - last offset - 1). */
  lag: number;
  paused: boolean;
}

export interface AlignDecision {
  pause: number[];
  resume: number[];
}

export class EventTimeAligner {
  private readonly parts = new Map<number, PartitionProgress>();

  constructor(private readonly maxAheadMs: number) {}

  /** Forgets everything (after a rebalance); the caller resumes what it paused. */
  reset(): number[] {
    const paused = [...this.parts].filter(([, p]) => p.paused).map(([n]) => n);
    this.parts.clear();
    return paused;
  }

  /** Records a processed batch and says which partitions to pause or resume. */
  update(partition: number, maxEventTime: number | null, lag: number): AlignDecision {
    const p = this.parts.get(partition) ?? { eventTime: null, lag, paused: false };
    if (maxEventTime !== null && (p.eventTime === null || maxEventTime > p.eventTime)) p.eventTime = maxEventTime;
    p.lag = lag;
    this.parts.set(partition, p);
    return this.decide();
  }

  private decide(): AlignDecision {
    let slowest: number | null = null;
    for (const p of this.parts.values()) {
      if (p.lag > 0 && p.eventTime !== null && (slowest === null || p.eventTime < slowest)) slowest = p.eventTime;
    }
    const out: AlignDecision = { pause: [], resume: [] };
    for (const [n, p] of this.parts) {
      const ahead = slowest === null || p.eventTime === null ? 0 : p.eventTime - slowest;
      if (!p.paused && p.lag > 0 && ahead > this.maxAheadMs) {
        p.paused = true;
        out.pause.push(n);
      } else if (p.paused && (slowest === null || ahead <= this.maxAheadMs / 2)) {
        p.paused = false;
        out.resume.push(n);
      }
    }
    return out;
  }
}
