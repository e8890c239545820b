import { Batch, Consumer, Kafka, Message, Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { KadeConfig, dlqTopic, upstreamGroup } from '../config/load';
import { KafkaAlertSink } from '../alerts/publisher';
import { runBatchLoop } from '../ingest/batch-loop';
import { BadInputError } from '../ingest/errors';
import { deadLetter } from '../ingest/dead-letter';
import { CollectedValues, KeyedScanner } from '../ingest/keyed-scan';
import { createProducer } from '../ingest/kafka';
import { RecordsByOffset, createOffsetReader } from '../ingest/offset-reader';
import { sendChunked } from '../ingest/send-chunked';
import { Logger } from '../ops/logger';
import { LagTracker, Metrics } from '../ops/metrics';
import { KeyBuilder } from '../state/keys';
import { RedisState } from '../state/redis-state';
import { Serial } from '../util/serial';
import { CompiledPlan } from './compiled-plan';
import { groupKafkaKey } from './group-id';
import { CommittedPosition, Detector, DetectorRecord, decodeCheckpoints, encodeCheckpoints } from './detector';
import { UpstreamBacklog } from './upstream-backlog';

/** Bound of the cache of Kafka keys checked against their group. */
const CHECKED_KEYS_MAX = 200_000;

/**
 * Where the consumer must go back to, per partition, when several rules ask at once (their
 * rebuilds start at different offsets): the earliest, so each rule reads all it lost. A rule
 * that asked for a later offset reads records it holds already; pane records remember the last
 * offset applied, so they count once.
 */
class SeekRequests {
  private readonly offsets = new Map<number, number>();

  add(partition: number, offset: number | null): void {
    if (offset === null) return;
    const prev = this.offsets.get(partition);
    if (prev === undefined || offset < prev) this.offsets.set(partition, offset);
  }

  apply(consumer: Consumer, topic: string): void {
    for (const [partition, offset] of this.offsets) consumer.seek({ topic, partition, offset: String(offset) });
  }
}

/**
 * The detector stage: a consumer group on the keyed topic (read_committed), one Detector per
 * rule, a wall-clock timer for idle partitions. Batches and timer ticks run one at a time.
 */
export class DetectorStage {
  private consumer: Consumer | null = null;
  private dlqProducer: Producer | null = null;
  private readonly sink: KafkaAlertSink;
  private readonly detectors = new Map<string, Detector>();
  private readonly scanner: KeyedScanner;
  private readonly serial = new Serial();
  private timer: NodeJS.Timeout | null = null;
  private upstream: UpstreamBacklog | null = null;
  private assigned: number[] = [];
  private joined = false;
  /** Per keyed partition: the consumer's position (next offset) and the last one committed. */
  private readonly positions = new Map<number, number>();
  private readonly committedAt = new Map<number, { position: number; metadata: string }>();
  private readonly checkedKeys = new Map<string, boolean>();
  private readonly keyedRecords: RecordsByOffset;

  constructor(
    private readonly kafka: Kafka,
    private readonly redis: Redis,
    private readonly config: KadeConfig,
    plans: CompiledPlan[],
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.sink = new KafkaAlertSink(kafka, config.topics.alerts, config.alerts.format);
    // Matching windows' records are read back from here for values() (CompiledPlan.valuesFromTopic).
    this.keyedRecords = createOffsetReader(kafka, config.topics.keyed);
    this.scanner = KeyedScanner.forPlans(plans);
    for (const plan of plans) {
      const state = new RedisState(redis, new KeyBuilder(config.redis.keyPrefix, plan.plan.stateKey), plan, config.detector.stateTtlSeconds,
        (op, seconds) => metrics.redisSeconds.observe({ op }, seconds));
      this.detectors.set(plan.id, new Detector(plan, state, this.sink, {
        latenessMs: config.detector.latenessMs,
        idleTimeoutMs: config.detector.idleTimeoutMs,
        flushIntervalMs: config.detector.flushIntervalMs,
        maxBufferedRecords: config.detector.maxBufferedRecords,
        memoryDecisionsMax: config.detector.memoryDecisionsMax,
        suppressionMs: config.alerts.suppressionMs,
        keyedRecords: this.keyedRecords,
        now: Date.now,
      }, {
        applied: (_p, n) => metrics.outcomes.inc({ stage: 'detector', outcome: 'applied' }, n),
        late: (p, n) => {
          metrics.outcomes.inc({ stage: 'detector', outcome: 'late' }, n);
          log.warn({ partition: p, late: n }, 'late events: every window that could hold them is closed');
        },
        windowsClosed: (_p, n) => metrics.windowsClosed.inc(n),
        rebuild: (p, from, until, cause) => {
          metrics.rebuilds.inc({ cause });
          log.warn({ partition: p, rule: plan.id, fromOffset: from, untilOffset: until, records: until - from, cause },
            'Redis does not hold this partition\'s state: rebuilding it by replaying the keyed topic');
        },
        replayed: (_p, n) => metrics.outcomes.inc({ stage: 'detector', outcome: 'replayed' }, n),
        valuesIncomplete: (p, gid, windowEnd, missing, count) => {
          metrics.alertRecordsMissing.inc(missing);
          if (missing === count) metrics.alerts.inc({ outcome: 'unreadable' });
          log.error({ partition: p, rule: plan.id, group: gid, windowEnd: new Date(windowEnd).toISOString(), missing, count },
            missing === count
              ? 'a window matched but none of its records could be read back from the keyed topic: alert not published (is its retention shorter than the detector\'s lag plus the window?)'
              : 'a window matched but some of its records could not be read back from the keyed topic: its alert lists the values of the others');
        },
        matched: (alerted, suppressed) => {
          metrics.alerts.inc({ outcome: 'published' }, alerted);
          metrics.alerts.inc({ outcome: 'suppressed' }, suppressed);
          if (alerted > 0) log.info({ alerted, suppressed }, 'alerts published');
        },
      }));
    }
  }

  private updateWatermarkLag(): void {
    let lowest: number | null = null;
    for (const d of this.detectors.values()) {
      for (const p of d.progress().values()) if (p.watermark !== null && (lowest === null || p.watermark < lowest)) lowest = p.watermark;
    }
    if (lowest !== null) this.metrics.watermarkLag.set((Date.now() - lowest) / 1000);
  }

  /** Loaded partitions' progress per rule (for the demo and tests). */
  progress(): Map<string, ReturnType<Detector['progress']>> {
    return new Map([...this.detectors].map(([id, d]) => [id, d.progress()]));
  }

  async start(): Promise<void> {
    const { config } = this;
    await this.sink.connect();
    this.dlqProducer = createProducer(this.kafka);
    await this.dlqProducer.connect();
    this.consumer = this.kafka.consumer({
      groupId: config.detector.groupId,
      sessionTimeout: config.kafka.sessionTimeoutMs,
      maxBytesPerPartition: config.kafka.maxBytesPerPartition,
      readUncommitted: false,
    });
    const consumer = this.consumer;
    consumer.on(consumer.events.REBALANCING, () => {
      this.joined = false;
      this.metrics.consumerLag.set({ stage: 'detector' }, 0);
      // Buffered records of partitions about to move are dropped, never committed: their next
      // owner reads them again from the last commit.
      void this.serial.run(async () => {
        for (const d of this.detectors.values()) d.reset();
        this.positions.clear();
        this.committedAt.clear();
      });
    });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      this.assigned = e.payload.memberAssignment[config.topics.keyed] ?? [];
      this.joined = true;
      void this.serial.run(async () => {
        const committed = await this.committedPositions();
        const seeks = new SeekRequests();
        for (const [ruleId, d] of this.detectors) {
          d.reset();
          const positions = new Map<number, CommittedPosition>();
          for (const [p, c] of committed) positions.set(p, { offset: c.offset, meta: c.meta.get(ruleId) ?? null });
          d.assign(positions);
          for (const p of this.assigned) seeks.add(p, await d.ensure(p));
        }
        seeks.apply(consumer, config.topics.keyed);
      }).catch((err) => this.log.error({ err }, 'loading partition state failed'));
    });
    const lag = new LagTracker(this.metrics, 'detector');
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.topic !== config.topics.keyed) return;
      const { partition, batchSize, firstOffset, lastOffset } = e.payload;
      lag.note(partition, Number(e.payload.offsetLag));
      for (const d of this.detectors.values()) d.notePosition(partition, Number(lastOffset), Number(e.payload.highWatermark));
      if (batchSize === 0 && firstOffset !== null) {
        // Transaction markers only (eachBatch never sees them): when every record before them
        // is processed, the position moves past them, or the group's committed offset stays one
        // short of the end for good on an idle partition (lag 1; seen in the bench when the
        // router's last commit marker came in a fetch of its own).
        void this.serial.run(async () => {
          if (this.positions.get(partition) !== Number(firstOffset)) return;
          this.positions.set(partition, Number(lastOffset) + 1);
          await this.commitIfDurable(consumer, partition);
        }).catch((err) => this.log.warn({ err, partition }, 'committing past transaction markers failed; the next commit covers them'));
      }
    });
    await consumer.connect();
    const upstream = new UpstreamBacklog(this.kafka, upstreamGroup(config), config.topics.raw, config.detector.upstreamMaxLag);
    this.upstream = upstream;
    let tickQueued = false;
    this.timer = setInterval(() => {
      // One tick at a time in the queue: behind a batch that waits on Redis, ticks would pile up.
      if (!this.joined || tickQueued) return;
      tickQueued = true;
      this.serial.run(async () => {
        tickQueued = false;
        this.updateWatermarkLag();
        const idle = [...this.detectors.values()].some((d) => d.idleCandidates().length > 0);
        if (!idle) return;
        const drained = await upstream.drained();
        // Caught up means caught up with the topic's end now, not as of the last fetch (which a
        // stall can make seconds old); read after the routers' progress, so it covers their output.
        if (drained) {
          const ends = await upstream.highWatermarks(config.topics.keyed);
          for (const d of this.detectors.values()) d.noteHighWatermarks(ends);
        }
        const seeks = new SeekRequests();
        for (const d of this.detectors.values()) {
          const r = await d.onTick(drained);
          for (const seek of r.seeks) seeks.add(seek.partition, seek.offset);
          for (const c of r.commits) await this.commitIfDurable(consumer, c.partition);
        }
        seeks.apply(consumer, config.topics.keyed);
      }).catch((err) => this.log.error({ err }, 'idle timer failed'));
    }, config.detector.tickMs);
    await runBatchLoop(consumer, config.topics.keyed, (batch, payload) => {
      if (payload.isStale()) return Promise.resolve();
      const started = process.hrtime.bigint();
      const { byRule, bad } = this.decode(batch);
      return this.serial.run(async () => {
        // Queued behind a rebuild's seek: this batch belongs to the old position.
        if (payload.isStale()) return;
        if (bad.length > 0) {
          await sendChunked(this.dlqProducer!, [{ topic: dlqTopic(config), messages: bad }], { acks: -1 });
          this.metrics.outcomes.inc({ stage: 'detector', outcome: 'dead_lettered' }, bad.length);
        }
        const hw = Number(batch.highWatermark);
        for (const [ruleId, records] of byRule) {
          const d = this.detectors.get(ruleId);
          if (d === undefined) {
            // A rule this detector does not run (rolling upgrade): counted, not silently dropped.
            this.metrics.outcomes.inc({ stage: 'detector', outcome: 'unknown_rule' }, records.length);
            continue;
          }
          const res = await d.onBatch(batch.partition, records, hw);
          if (res.seek !== undefined) {
            // Redis lost this partition's state: replay from where the rebuild starts. The batch
            // loop sees the seek (the batch is stale) and resolves nothing.
            consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(res.seek) });
            return;
          }
        }
        this.positions.set(batch.partition, Number(batch.lastOffset()) + 1);
        await this.commitIfDurable(consumer, batch.partition);
        this.metrics.recordsIn.inc({ topic: batch.topic }, batch.messages.length);
        this.metrics.batchSeconds.observe({ stage: 'detector' }, Number(process.hrtime.bigint() - started) / 1e9);
      });
    }, { autoCommit: false });
  }

  /** Reads a batch's records from their bytes, by rule; malformed ones become dead letters. */
  private decode(batch: Batch): { byRule: Map<string, DetectorRecord[]>; bad: Message[] } {
    const byRule = new Map<string, DetectorRecord[]>();
    const bad: Message[] = [];
    const collected = new CollectedValues();
    for (const m of batch.messages) {
      try {
        if (m.value === null) throw new BadInputError('empty', 'keyed record has no value');
        // Read from its bytes in one pass: header, validation, the rule's tracked fields' values.
        const from = collected.length;
        const h = this.scanner.read(m.value, collected);
        const to = collected.length;
        let list = byRule.get(h.rule);
        if (list === undefined) byRule.set(h.rule, (list = []));
        const offset = Number(m.offset);
        const kafkaKey = this.keyOf(m.key, m.value, h.groupPos);
        list.push(kafkaKey === undefined
          ? { offset, eventTime: h.eventTime, group: this.scanner.group(m.value, h.groupPos), collected, from, to, value: m.value }
          : { offset, eventTime: h.eventTime, collected, from, to, kafkaKey, value: m.value });
      } catch (err) {
        const e = err instanceof BadInputError ? err : new BadInputError('invalid-avro', `keyed record is not a KeyedAuditRecord: ${(err as Error).message}`);
        bad.push(deadLetter({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp }, e, null));
      }
    }
    return { byRule, bad };
  }

  /**
   * Commits a partition's position once every rule has written what it buffered (write-behind),
   * with each rule's checkpoint in the offset metadata, from which a lost Redis is rebuilt.
   */
  private async commitIfDurable(consumer: Consumer, partition: number): Promise<void> {
    const position = this.positions.get(partition);
    if (position === undefined) return;
    for (const d of this.detectors.values()) if (!d.durableFor(partition)) return;
    const metas = new Map();
    for (const [ruleId, d] of this.detectors) {
      const m = d.checkpointMeta(partition);
      if (m === null) continue;
      if (m.dropped !== undefined && m.dropped > 0) {
        this.log.warn({ partition, rule: ruleId, dropped: m.dropped }, 'checkpoint metadata over budget: oldest suppression anchors left out');
      }
      metas.set(ruleId, m);
    }
    const metadata = encodeCheckpoints(metas);
    const last = this.committedAt.get(partition);
    if (last !== undefined && last.position === position && last.metadata === metadata) return;
    await consumer.commitOffsets([{ topic: this.config.topics.keyed, partition, offset: String(position), metadata }]);
    this.committedAt.set(partition, { position, metadata });
  }

  /** This group's committed offsets on the keyed topic, with the checkpoints stored alongside. */
  private async committedPositions(): Promise<Map<number, { offset: number; meta: ReturnType<typeof decodeCheckpoints> }>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const [topic] = await admin.fetchOffsets({ groupId: this.config.detector.groupId, topics: [this.config.topics.keyed] });
      const out = new Map<number, { offset: number; meta: ReturnType<typeof decodeCheckpoints> }>();
      for (const p of topic?.partitions ?? []) {
        if (Number(p.offset) < 0) continue;
        out.set(p.partition, { offset: Number(p.offset), meta: decodeCheckpoints(p.metadata) });
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }

  /**
   * The group's Kafka key as a string, which the router sets to groupKafkaKey(group): reusing it
   * saves a JSON.stringify per record. A key is checked against the record's group once (then
   * cached); a key that is not the group's (another producer) is ignored.
   */
  private keyOf(key: Buffer | null, value: Buffer, groupPos: number): string | undefined {
    if (key === null) return undefined;
    const s = key.toString('utf8');
    let ok = this.checkedKeys.get(s);
    if (ok === undefined) {
      if (this.checkedKeys.size >= CHECKED_KEYS_MAX) this.checkedKeys.clear();
      ok = groupKafkaKey(this.scanner.group(value, groupPos)) === s;
      this.checkedKeys.set(s, ok);
    }
    return ok ? s : undefined;
  }

  /** Joined its consumer group (and not rebalancing). */
  isReady(): boolean {
    return this.joined;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.upstream?.close();
    const consumer = this.consumer;
    if (consumer !== null && this.joined) {
      // Write what is buffered and commit it, so the next owner has less to read again.
      await this.serial.run(async () => {
        const partitions = new Set<number>();
        for (const d of this.detectors.values()) for (const c of await d.flushAll()) partitions.add(c.partition);
        for (const p of partitions) await this.commitIfDurable(consumer, p);
      }).catch((err) => this.log.warn({ err }, 'flushing buffered records at shutdown failed; they will be read again'));
    }
    await this.consumer?.disconnect();
    await this.serial.run(async () => undefined);
    await this.sink.close();
    await this.dlqProducer?.disconnect();
    await this.keyedRecords.close();
  }
}
