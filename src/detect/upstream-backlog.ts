import { Admin, Kafka } from 'kafkajs';

/**
 * Whether the consumer group feeding the keyed topic (the routers) has a backlog on its input.
 * A partition may jump its watermark to the wall clock only when nothing is still on its way.
 */
export class UpstreamBacklog {
  private admin: Admin | null = null;
  /** Committed offset per raw partition at the previous check. */
  private previous = new Map<number, number>();

  constructor(
    private readonly kafka: Kafka,
    private readonly groupId: string | null,
    private readonly topic: string,
    /** A live router always has a few records in flight; a stalled one has a backlog. */
    private readonly maxLag: number,
  ) {}

  private async connected(): Promise<Admin> {
    if (this.admin === null) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    return this.admin;
  }

  /** The high watermark of each partition of a topic (the keyed topic), read now. */
  async highWatermarks(topic: string): Promise<Map<number, number>> {
    const ends = await (await this.connected()).fetchTopicOffsets(topic);
    return new Map(ends.map((e) => [e.partition, Number(e.high)]));
  }

  async drained(): Promise<boolean> {
    if (this.groupId === null) return true;
    const admin = await this.connected();
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(this.topic),
      admin.fetchOffsets({ groupId: this.groupId, topics: [this.topic] }),
    ]);
    const done = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
    let lag = 0;
    let stalled = false;
    for (const e of ends) {
      const high = Number(e.high);
      const at = done.get(e.partition) ?? -1;
      // No commit yet: everything since the log start is still to route.
      const behind = at < 0 ? high - Number(e.low) : high - at;
      // A trailing transaction marker (a transactional shipper) is never delivered to the routers.
      const backlog = Math.max(0, behind - 1);
      lag += backlog;
      // A backlog, however small, whose offsets did not move since the last check is a router
      // that is down or retrying (a broker restart): its records are still on their way.
      const before = this.previous.get(e.partition);
      if (backlog > 0 && (before === undefined || at <= before)) stalled = true;
    }
    this.previous = done;
    return !stalled && lag <= this.maxLag;
  }

  async close(): Promise<void> {
    this.previous.clear();
    await this.admin?.disconnect();
    this.admin = null;
  }
}
