import { Admin, Batch, Consumer, Kafka } from 'kafkajs';
import { KadeConfig, dlqTopic } from '../config/load';
import { CompiledPlan } from '../detect/compiled-plan';
import { Logger } from '../ops/logger';
import { LagTracker, Metrics } from '../ops/metrics';
import { runBatchLoop } from './batch-loop';
import { PartitionTransactions } from './partition-transactions';
import { EventTimeAligner } from './event-time-aligner';
import { KeyedCodec } from './keyed-codec';
import { RouteOptions, routeRecords } from './route';

/**
 * Raw partitions whose batches are routed at the same time. Each has its own transactional
 * producer, so one partition's CPU work overlaps another's transaction round trips (a commit costs
 * several broker round trips per batch); within a partition batches stay in order.
 */
const ROUTER_CONCURRENT_PARTITIONS = 4;

/** The router stage: raw topic -> keyed topic (+ dead letters). init / start / close. */
export class RouterStage {
  private consumer: Consumer | null = null;
  private joined = false;
  private transactions: PartitionTransactions | null = null;
  private admin: Admin | null = null;
  /** Incremented on each group join: a partition is checked once per assignment. */
  private generation = 0;
  /** Partition -> the generation in which its position was checked against the committed offset. */
  private readonly checked = new Map<number, number>();
  private readonly opts: RouteOptions;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: KadeConfig,
    plans: CompiledPlan[],
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.opts = {
      plans,
      codec: new KeyedCodec(),
      timeField: config.router.timeField,
      namespaceHeader: config.router.namespaceHeader,
      defaultNamespace: config.router.defaultNamespace,
      maxMessageBytes: config.router.maxMessageBytes,
      maxJsonDepth: config.router.maxJsonDepth,
    };
  }

  async start(): Promise<void> {
    const { config } = this;
    this.transactions = new PartitionTransactions(this.kafka, `${config.router.groupId}-${config.topics.raw}`, config.router.groupId, this.log);
    this.consumer = this.kafka.consumer({
      groupId: config.router.groupId,
      sessionTimeout: config.kafka.sessionTimeoutMs,
      maxBytesPerPartition: config.kafka.maxBytesPerPartition,
    });
    const consumer = this.consumer;
    const aligner = new EventTimeAligner(config.router.alignMs);
    const topic = config.topics.raw;
    const lag = new LagTracker(this.metrics, 'router');
    consumer.on(consumer.events.REBALANCING, () => { this.joined = false; lag.reset(); });
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => lag.note(e.payload.partition, Number(e.payload.offsetLag)));
    consumer.on(consumer.events.GROUP_JOIN, () => {
      this.generation++;
      this.joined = true;
      const paused = aligner.reset();
      if (paused.length > 0) consumer.resume([{ topic, partitions: paused }]);
    });
    this.admin = this.kafka.admin();
    await this.admin.connect();
    await consumer.connect();
    const transactions = this.transactions;
    const dlq = dlqTopic(config);
    await runBatchLoop(consumer, topic, async (batch) => {
      const started = process.hrtime.bigint();
      let messages = batch.messages;
      if (this.checked.get(batch.partition) !== this.generation) {
        const resumed = await this.resume(batch);
        if (resumed === null) return;
        messages = resumed;
        this.checked.set(batch.partition, this.generation);
      }
      const result = routeRecords(
        messages.map((m) => ({
          topic: batch.topic, partition: batch.partition, offset: m.offset,
          key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp,
        })),
        this.opts,
      );
      const topicMessages = [];
      if (result.keyed.length > 0) topicMessages.push({ topic: config.topics.keyed, messages: result.keyed });
      if (result.dlq.length > 0) topicMessages.push({ topic: dlq, messages: result.dlq });
      // Output and input offset commit atomically: a crash anywhere leaves neither or both.
      try {
        await transactions.commit(
          { topic: batch.topic, partition: batch.partition, nextOffset: String(Number(batch.lastOffset()) + 1) },
          topicMessages,
        );
      } catch (err) {
        // The outcome may be unknown, or another producer took the transactional id and committed
        // past this batch: the retry checks the committed offset again first.
        this.checked.delete(batch.partition);
        throw err;
      }
      this.metrics.recordsIn.inc({ topic: batch.topic }, messages.length);
      this.metrics.outcomes.inc({ stage: 'router', outcome: 'routed' }, result.routed);
      this.metrics.outcomes.inc({ stage: 'router', outcome: 'filtered' }, result.filtered);
      this.metrics.outcomes.inc({ stage: 'router', outcome: 'dead_lettered' }, result.deadLettered);
      if (result.deadLettered > 0) this.log.warn({ partition: batch.partition, deadLettered: result.deadLettered }, 'bad input sent to the dead-letter topic');
      this.metrics.batchSeconds.observe({ stage: 'router' }, Number(process.hrtime.bigint() - started) / 1e9);
      if (config.router.alignMs > 0) {
        const lag = Number(batch.highWatermark) - Number(batch.lastOffset()) - 1;
        const { pause, resume } = aligner.update(batch.partition, result.maxEventTime, lag);
        if (pause.length > 0) consumer.pause([{ topic, partitions: pause }]);
        if (resume.length > 0) consumer.resume([{ topic, partitions: resume }]);
      }
    }, { autoCommit: false, partitionsConsumedConcurrently: ROUTER_CONCURRENT_PARTITIONS });
  }

  /**
   * Before the first batch of a partition after an assignment (or after a failed transaction):
   * renews the partition's producer, which waits until the transactional id's last transaction is
   * complete, then reads the group's committed offset, now stable. The consumer's position came
   * from an offset fetch that may predate a commit still in flight (a previous owner's, or this
   * process's own just before a rebalance); records below the committed offset are routed
   * already. Returns the batch's records to route, or null when the committed offset lies past the
   * batch (the consumer was sent there; the batch is stale).
   */
  private async resume(batch: Batch): Promise<Batch['messages'] | null> {
    const { topic, partition } = batch;
    await this.transactions!.renew(partition);
    const [offsets] = await this.admin!.fetchOffsets({ groupId: this.config.router.groupId, topics: [topic] });
    const committed = Number(offsets?.partitions.find((p) => p.partition === partition)?.offset ?? -1);
    if (committed < 0 || committed <= Number(batch.firstOffset())) return batch.messages;
    if (committed > Number(batch.lastOffset()) + 1) {
      this.log.warn({ partition, committed, batchFirst: batch.firstOffset() }, 'position behind the committed offset: seeking to it');
      this.consumer!.seek({ topic, partition, offset: String(committed) });
      return null;
    }
    const kept = batch.messages.filter((m) => Number(m.offset) >= committed);
    this.metrics.outcomes.inc({ stage: 'router', outcome: 'already_committed' }, batch.messages.length - kept.length);
    this.log.warn({ partition, committed, batchFirst: batch.firstOffset() }, 'records below the committed offset were routed already: skipping them');
    return kept;
  }

  /** Joined its consumer group (and not rebalancing). */
  isReady(): boolean {
    return this.joined;
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect();
    await this.transactions?.close();
    await this.admin?.disconnect();
  }
}
