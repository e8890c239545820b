import { Admin, Kafka } from 'kafkajs';

/**
 * Whether the consumer group feeding the keyed topic (the routers) has a backlog on its input.
 * A partition may jump its watermark to the wall clock only when nothing is still on its way.
 */
export class UpstreamBacklog {
  private admin: Admin | null = null;

  constructor(
    private readonly kafka: Kafka,
    private readonly groupId: string | null,
    private readonly topic: string,
    /** A live router always has a few records in flight; a stalled one has a backlog. */
    private readonly maxLag: number,
  ) {}

  async drained(): Promise<boolean> {
    if (this.groupId === null) return true;
    if (this.admin === null) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    const [ends, committed] = await Promise.all([
      this.admin.fetchTopicOffsets(this.topic),
      this.admin.fetchOffsets({ groupId: this.groupId, topics: [this.topic] }),
    ]);
    const done = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
    let lag = 0;
    for (const e of ends) {
      const high = Number(e.high);
      const at = done.get(e.partition) ?? -1;
      // No commit yet: everything since the log start is still to route.
      const behind = at < 0 ? high - Number(e.low) : high - at;
      // A trailing transaction marker (a transactional shipper) is never delivered to the routers.
      lag += Math.max(0, behind - 1);
    }
    return lag <= this.maxLag;
  }

  async close(): Promise<void> {
    await this.admin?.disconnect();
    this.admin = null;
  }
}
