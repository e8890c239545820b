import { Alert, buildAlert } from '../alerts/alert';
import { DetectorState, PartitionRestore, PartitionSnapshot, WindowRef } from '../state/detector-state';
import { DependencyError } from '../ingest/errors';
import { ClockState, PartitionClock } from '../window/partition-clock';
import { paneStart } from '../window/panes';
import { CompiledPlan, GroupKey, WindowAggregates } from './compiled-plan';
import { DetectorRecord, PaneBuffer, PreAggregator, storedValue } from './pre-aggregate';
import { OFFSETS_CODE, PaneDelta, decodeOffsets } from '../state/pane-delta';
import { AuditRecord } from '../ingest/audit-record';
import { KeyedCodec } from '../ingest/keyed-codec';
import { CollectedValues, KeyedScanner } from '../ingest/keyed-scan';
import { groupId, groupKafkaKey } from './group-id';

export type { DetectorRecord };

/**
 * Records of the keyed topic by offset (src/ingest/offset-reader.ts): a rule whose values() are
 * re-read (CompiledPlan.valuesFromTopic) reads a matching window's records back through it.
 * Offsets that are not there any more are absent from the answer.
 */
export interface KeyedRecords {
  read(partition: number, offsets: number[]): Promise<Map<number, { key: Buffer | null; value: Buffer | null }>>;
}

/** Publishes alerts; resolves once every alert is acknowledged by the broker. */
export interface AlertSink {
  publish(alerts: Alert[]): Promise<void>;
}

export interface DetectorOptions {
  latenessMs: number;
  idleTimeoutMs: number;
  suppressionMs: number;
  /**
   * Write-behind: pane deltas of consecutive batches are folded in memory and written (and the
   * offsets committed) at most this long after the first of them, or sooner when a window closes,
   * the buffer holds maxBufferedRecords, or the partition is caught up. 0: every batch.
   */
  flushIntervalMs?: number;
  maxBufferedRecords?: number;
  /**
   * (group, pane) PaneStats kept in memory over all partitions (default 100,000); at the cap, new
   * panes are not trusted (their windows are evaluated in Redis). 0: never decide in memory.
   */
  memoryDecisionsMax?: number;
  /** Where a matching window's records are read back (needed when plan.valuesFromTopic). */
  keyedRecords?: KeyedRecords;
  /** Wall clock (injected for tests). */
  now: () => number;
}

export interface DetectorEvents {
  applied(partition: number, n: number): void;
  late(partition: number, n: number): void;
  windowsClosed(partition: number, n: number): void;
  matched(alerted: number, suppressed: number): void;
  watermark(partition: number, watermarkMs: number | null): void;
  /** Redis lost (or is behind on) a partition's state: it is rebuilt by replaying from fromOffset. */
  rebuild(partition: number, fromOffset: number, untilOffset: number, cause: 'lost-while-running' | 'lost-before-assignment'): void;
  /** Replayed records of a rebuild (already counted as applied or late once). */
  replayed(partition: number, n: number): void;
  /**
   * A matching window's records could not all be read back from the keyed topic (its retention
   * deleted them, or they are unreadable): `missing` of `count`. The alert goes out with the
   * values of the records found; with none found it cannot name its group and is not published.
   */
  valuesIncomplete(partition: number, gid: string, windowEnd: number, missing: number, count: number): void;
}

/** Where the group committed a partition, with the checkpoint the detector stored alongside. */
export interface CommittedPosition {
  offset: number;
  meta: CheckpointMeta | null;
}

interface PartitionState {
  clock: PartitionClock;
  panes: Set<number>;
  /** pane -> offset of its first record on this partition: a rebuild replays from the oldest. */
  paneFirstOffsets: Map<number, number>;
  recent: Map<string, number>;
  /** group id -> end of the window of its last alert. */
  anchors: Map<string, number>;
  /** Last offset processed and the high watermark seen with it: caught up when they meet. */
  lastOffset: number | null;
  highWatermark: number | null;
  /**
   * The consumer was sent back (seekTo) and no batch from there has arrived yet. Positions
   * reported meanwhile are where it was, not where it is: kafkajs reports a batch when eachBatch
   * returns, also the one whose flush found Redis empty (after the seek), and batches fetched
   * before the seek. Taken, they ended a rebuild at its first replayed batch.
   */
  seeking: boolean;
  /** Redis connection generation at which this state was last known to be in Redis. */
  verifiedGeneration: number;
  /** Offsets below this are the replay of a rebuild (not counted again), or null. */
  rebuildUntil: number | null;
  /** A rebuild decided while loading: the consumer must seek here before processing. */
  pendingSeek: number | null;
  /** Deltas of records processed but not yet written to Redis (write-behind). */
  buffer: PaneBuffer;
  /** Wall time the buffer received its first batch. */
  bufferSince: number;
  /** The clock as last written to Redis: what a reconnect must find there. */
  durable: ClockState | null;
  /** The position after the last successful write (what may be committed), or null. */
  flushedPosition: number | null;
  /**
   * Panes whose every record this detector wrote itself since it loaded the partition (first
   * seen as new, outside a rebuild): `stats` knows each of their groups. Cleared when Redis
   * lost the partition; a reloaded partition starts with none.
   */
  trusted: Set<number>;
  /** Per trusted pane, per group: see PaneStats. */
  stats: Map<number, Map<string, PaneStats>>;
}

/**
 * What the detector knows of one (group, pane) it wrote: the exact record count Redis answered
 * (offset-guarded), and per plan.clauseFields entry j the pane's distinct values while fewer than
 * its K, or null once it holds K or more. That decides every clause of the condition for a window
 * of trusted panes, so closeWindows skips the Redis evaluation of windows that cannot match.
 */
interface PaneStats {
  count: number;
  /** Fewer than K values each (K <= 64: a small array beats a Set), or null at K. */
  sets: Array<string[] | null>;
  /**
   * values() read back from the keyed topic (CompiledPlan.valuesFromTopic): the pane's values()
   * per field while its count is below the bound, so its alerts need no Kafka read; null once
   * at the bound (or not kept).
   */
  values: Map<number, Set<string>> | null;
  /** The group's Kafka key (groupKafkaKey) while values are kept. */
  key: string | null;
}

/** A matching window's group key and values() read back from its records, and how many were found. */
interface WindowRecords {
  groupKey: GroupKey | null;
  members: Map<number, string[]>;
  found: number;
}

export interface BatchResult {
  applied: number;
  late: number;
  /** Records of a rebuild's replay. */
  replayed: number;
  /** Set when the consumer must seek this partition here (a rebuild starts) before going on. */
  seek?: number;
  /** Set when everything before this offset is durable: the caller may commit it. */
  commit?: number;
}

/**
 * What the detector commits with a partition's Kafka offsets (offset metadata), so a detector that
 * finds Redis empty can restore the partition: stream time, last closed window, idle watermark,
 * the offset to replay from, and suppression anchors / recent matches as
 * {group id: hops before lc}.
 */
export interface CheckpointMeta {
  st: number | null;
  lc: number | null;
  iw: number | null;
  rf: number | null;
  a: Record<string, number>;
  r: Record<string, number>;
}

/** Kafka's default offset.metadata.max.bytes is 4096; leave room for several rules. */
export const META_BUDGET_BYTES = 3000;

/** True if Redis holds less of a partition than the checkpoint committed to Kafka. */
function behind(snap: PartitionSnapshot, meta: CheckpointMeta): boolean {
  if (meta.st === null) return false;
  if (!snap.exists) return true;
  return (snap.clock.streamTime ?? -Infinity) < meta.st || (snap.clock.lastClosed ?? -Infinity) < (meta.lc ?? -Infinity);
}

function encodeEnds(ends: Map<string, number>, lastClosed: number | null, hopMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  if (lastClosed === null) return out;
  // Newest first, so a budget cut drops the oldest.
  for (const [gid, end] of [...ends].sort((x, y) => y[1] - x[1])) out[gid] = Math.round((lastClosed - end) / hopMs);
  return out;
}

function decodeEnds(enc: Record<string, number>, lastClosed: number | null, hopMs: number): Map<string, number> {
  const out = new Map<string, number>();
  if (lastClosed === null) return out;
  for (const [gid, k] of Object.entries(enc)) out.set(gid, lastClosed - k * hopMs);
  return out;
}

/**
 * Keeps the metadata within budget: recent matches go first (they only steer which windows are
 * re-evaluated for suppression counting), then the oldest anchors. A dropped anchor can let one
 * duplicate alert through after a Redis loss; that is logged by the caller.
 */
export function fitMeta(meta: CheckpointMeta, budgetBytes: number): CheckpointMeta & { dropped?: number } {
  let size = JSON.stringify(meta).length;
  if (size <= budgetBytes) return meta;
  const r = Object.entries(meta.r);
  const a = Object.entries(meta.a);
  let dropped = 0;
  const cost = ([g, k]: [string, number]): number => g.length + String(k).length + 4;
  while (size > budgetBytes && r.length > 0) size -= cost(r.pop() as [string, number]);
  while (size > budgetBytes && a.length > 0) { size -= cost(a.pop() as [string, number]); dropped++; }
  return { ...meta, r: Object.fromEntries(r), a: Object.fromEntries(a), dropped };
}

export function encodeCheckpoints(metas: Map<string, CheckpointMeta>): string {
  const out: Record<string, CheckpointMeta> = {};
  for (const [rule, m] of metas) {
    const { dropped: _dropped, ...rest } = m as CheckpointMeta & { dropped?: number };
    out[rule] = rest;
  }
  return JSON.stringify({ kade: 1, rules: out });
}

/** Parses committed offset metadata; anything kade did not write reads as no checkpoint. */
export function decodeCheckpoints(metadata: string | null | undefined): Map<string, CheckpointMeta> {
  const out = new Map<string, CheckpointMeta>();
  if (metadata === null || metadata === undefined || metadata === '') return out;
  let doc: unknown;
  try {
    doc = JSON.parse(metadata);
  } catch {
    return out;
  }
  const rules = (doc as { kade?: unknown; rules?: unknown })?.rules;
  if ((doc as { kade?: unknown })?.kade !== 1 || typeof rules !== 'object' || rules === null) return out;
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const ends = (v: unknown): Record<string, number> => {
    const o: Record<string, number> = {};
    if (typeof v === 'object' && v !== null) for (const [g, k] of Object.entries(v)) if (typeof k === 'number' && Number.isInteger(k)) o[g] = k;
    return o;
  };
  for (const [rule, m] of Object.entries(rules as Record<string, Record<string, unknown>>)) {
    if (typeof m !== 'object' || m === null) continue;
    out.set(rule, { st: num(m.st), lc: num(m.lc), iw: num(m.iw), rf: num(m.rf), a: ends(m.a), r: ends(m.r) });
  }
  return out;
}

export interface TickResult {
  /** Partitions the consumer must seek (a rebuild starts). */
  seeks: Array<{ partition: number; offset: number }>;
  /** Partitions whose buffer was flushed: commit these offsets. */
  commits: Array<{ partition: number; offset: number }>;
}

/** Records buffered per partition before a flush is forced. */
const DEFAULT_MAX_BUFFERED = 20_000;

/** Default of DetectorOptions.memoryDecisionsMax. */
const DEFAULT_MEMORY_DECISIONS = 100_000;

/** Windows evaluated per pipelined round trip. */
const EVAL_CHUNK = 2000;

/**
 * The detector stage for one rule: per-partition stream time and watermark, batch
 * pre-aggregation into pane deltas, window closing, candidate evaluation, suppression. It returns
 * alerts to the sink and marks them sent only after the sink acknowledged them.
 */
export class Detector {
  private readonly partitions = new Map<number, PartitionState>();
  private committed = new Map<number, CommittedPosition>();
  /** Partitions forgotten after a failed flush: where their consumer must read again from. */
  private readonly seekAfterError = new Map<number, number>();
  private readonly preAggregator: PreAggregator;
  /** mayMatch's working memory (reused). */
  private readonly scratchPanes: PaneStats[] = [];
  private readonly scratchUnion: string[] = [];
  /** Candidate windows evaluated in Redis, and skipped because their bounds cannot match. */
  evaluatedWindows = 0;
  skippedWindows = 0;
  /**
   * Per partition, the alerts (`<group id>:<window end>`) this process published whose closing
   * commit to Redis has not succeeded yet: a Redis outage between the two does not re-send them.
   */
  private readonly sentUncommitted = new Map<number, Set<string>>();
  /** PaneStats entries over all partitions (bounded by memoryDecisionsMax). */
  private statsEntries = 0;
  private readonly codec: KeyedCodec | null;
  /** Reads the values()-only fields of a kept record (valuesFromTopic), and its scratch space. */
  private readonly valuesScanner: KeyedScanner | null;
  private readonly scratchValues = new CollectedValues();

  constructor(
    private readonly plan: CompiledPlan,
    private readonly state: DetectorState,
    private readonly sink: AlertSink,
    private readonly opts: DetectorOptions,
    private readonly events: Partial<DetectorEvents> = {},
  ) {
    this.preAggregator = new PreAggregator(plan.storedFields, plan.plan.window.hopMs, plan.valuesFromTopic ? plan.pruneAt : 0);
    if (plan.valuesFromTopic && opts.keyedRecords === undefined) throw new Error(`rule ${plan.id}: its values() are read back from the keyed topic, and no reader was given`);
    this.codec = plan.valuesFromTopic ? new KeyedCodec() : null;
    this.valuesScanner = plan.valuesFromTopic
      ? new KeyedScanner([{ id: plan.id, fields: plan.fields.filter((f) => f.needValues).map((f) => ({ index: f.index, path: f.accessor.path })) }])
      : null;
  }

  /** Forgets in-memory state of all partitions; it is reloaded from Redis on next use. */
  reset(): void {
    this.partitions.clear();
    this.sentUncommitted.clear();
    this.statsEntries = 0;
    this.committed.clear();
    this.seekAfterError.clear();
  }

  /**
   * The committed positions of newly assigned partitions (offset and checkpoint metadata), read
   * from Kafka at assignment: they tell whether Redis lost a partition's state.
   */
  assign(committed: Map<number, CommittedPosition>): void {
    this.committed = new Map(committed);
  }

  assignedPartitions(): number[] {
    return [...this.partitions.keys()];
  }

  private async partition(p: number): Promise<PartitionState> {
    let ps = this.partitions.get(p);
    if (ps !== undefined) return ps;
    const generation = this.state.generation();
    const snap = await this.state.loadPartition(p);
    const committed = this.committed.get(p) ?? null;
    const meta = committed?.meta ?? null;
    if (committed !== null && meta !== null && behind(snap, meta)) {
      // Kafka committed progress that Redis does not hold: Redis restarted empty or failed over
      // without the latest writes. The clock, anchors and recent matches come from the
      // checkpoint committed with the offsets; pane contents are rebuilt by replay.
      const clock: ClockState = { streamTime: meta.st, lastClosed: meta.lc, idleWatermark: meta.iw };
      ps = this.fresh(clock, generation);
      ps.recent = decodeEnds(meta.r, meta.lc, this.plan.plan.window.hopMs);
      ps.anchors = decodeEnds(meta.a, meta.lc, this.plan.plan.window.hopMs);
      const from = meta.rf ?? committed.offset;
      ps.rebuildUntil = from < committed.offset ? committed.offset : null;
      ps.pendingSeek = ps.rebuildUntil === null ? null : from;
      await this.state.restorePartition(p, this.restoreOf(ps));
      if (ps.pendingSeek !== null) this.events.rebuild?.(p, from, committed.offset, 'lost-before-assignment');
    } else {
      ps = this.fresh(snap.clock, generation);
      ps.panes = new Set(snap.panes);
      ps.paneFirstOffsets = snap.paneFirstOffsets;
      ps.recent = snap.recent;
      ps.anchors = snap.anchors;
      if (snap.rebuildUntil !== null) {
        // A rebuild that an earlier owner did not finish: its replay starts over (idempotent).
        ps.rebuildUntil = snap.rebuildUntil;
        ps.pendingSeek = this.replayFrom(ps);
      }
    }
    const afterError = this.seekAfterError.get(p);
    if (afterError !== undefined) {
      this.seekAfterError.delete(p);
      ps.pendingSeek = Math.min(afterError, ps.pendingSeek ?? Infinity);
    }
    ps.flushedPosition = ps.flushedPosition ?? committed?.offset ?? null;
    // The consumer starts from the committed offset: until its first batch, that is the position
    // (unknown, the partition would count as caught up however far behind it is).
    if (ps.lastOffset === null && ps.pendingSeek === null && committed !== null) ps.lastOffset = committed.offset - 1;
    this.partitions.set(p, ps);
    return ps;
  }

  private fresh(clock: ClockState, generation: number): PartitionState {
    return {
      clock: new PartitionClock(this.plan.plan.window, this.opts.latenessMs, this.opts.idleTimeoutMs, clock, this.opts.now()),
      panes: new Set(), paneFirstOffsets: new Map(), recent: new Map(), anchors: new Map(),
      lastOffset: null, highWatermark: null, seeking: false, verifiedGeneration: generation, rebuildUntil: null, pendingSeek: null,
      buffer: new PaneBuffer(), bufferSince: 0, durable: clock.streamTime === null ? null : { ...clock }, flushedPosition: null,
      trusted: new Set(), stats: new Map(),
    };
  }

  private restoreOf(ps: PartitionState): PartitionRestore {
    return {
      clock: ps.clock.snapshot(), panes: [...ps.panes], paneFirstOffsets: ps.paneFirstOffsets,
      recent: ps.recent, anchors: ps.anchors, rebuildUntil: ps.rebuildUntil,
    };
  }

  /**
   * Makes sure a partition's state is loaded (e.g. on assignment), so idle ticks can close it.
   * Returns the offset the consumer must seek to when Redis lost the partition's state, or null.
   */
  async ensure(partition: number): Promise<number | null> {
    const ps = await this.partition(partition);
    const seek = ps.pendingSeek;
    ps.pendingSeek = null;
    return seek === null ? null : this.seekTo(ps, seek);
  }

  /**
   * A rebuild's replay keeps records of panes that some unevaluated window reads, and of the pane
   * that just left (its groups are candidates of the next window): panes from this start on.
   */
  private keepReplayedFrom(ps: PartitionState): number | null {
    const { lastClosed } = ps.clock.snapshot();
    const { sizeMs: W, hopMs: P } = this.plan.plan.window;
    return lastClosed === null ? null : lastClosed - W;
  }

  /** The oldest offset a rebuild must replay from: the first record of the oldest live pane. */
  private replayFrom(ps: PartitionState): number | null {
    let from: number | null = null;
    for (const q of ps.panes) {
      // A pane whose first offset is unknown (state written by an older kade): replay it all.
      const o = ps.paneFirstOffsets.get(q) ?? 0;
      if (from === null || o < from) from = o;
    }
    return from;
  }

  /**
   * After a Redis connection loss, checks that Redis still holds this partition's state. If not
   * (Redis restarted empty, or a failover lost the latest writes), writes the partition state
   * back from memory, drops the unwritten buffer and returns the offset to replay from; the
   * records from there up to the consumer's position rebuild the panes (the buffered ones
   * included). `position` is the first record not yet in Redis. Returns null when nothing is lost.
   */
  private async verify(p: number, ps: PartitionState, position: number | null): Promise<number | null> {
    const generation = this.state.generation();
    if (ps.verifiedGeneration === generation) return null;
    const snap = await this.state.loadPartition(p);
    const mine = ps.durable;
    const lost = mine !== null && mine.streamTime !== null && (!snap.exists || (snap.clock.streamTime ?? -Infinity) < mine.streamTime
      || (snap.clock.lastClosed ?? -Infinity) < (mine.lastClosed ?? -Infinity));
    if (!lost) {
      ps.verifiedGeneration = generation;
      return null;
    }
    // Replay from the oldest live pane's first record, or at least from the first buffered one
    // (the buffer is dropped); every record the clock has seen must be back in Redis before a
    // window closes again, so the replay runs up to the consumer's position.
    const reread = ps.buffer.firstOffset ?? position;
    const oldest = this.replayFrom(ps);
    const from = oldest === null ? reread : Math.min(oldest, reread ?? Infinity);
    const until = ps.lastOffset === null ? position : Math.max(ps.lastOffset + 1, position ?? -Infinity);
    const rebuildUntil = from !== null && until !== null && from < until ? Math.max(until, ps.rebuildUntil ?? -Infinity) : ps.rebuildUntil;
    await this.state.restorePartition(p, { ...this.restoreOf(ps), rebuildUntil });
    ps.buffer = new PaneBuffer();
    this.untrustAll(ps);
    ps.rebuildUntil = rebuildUntil;
    ps.verifiedGeneration = generation;
    if (from === null || rebuildUntil === null) return null;
    this.events.rebuild?.(p, from, rebuildUntil, 'lost-while-running');
    return from;
  }

  /**
   * The checkpoint to commit with this partition's offsets, so that a detector finding Redis
   * empty can restore the clock and suppression and knows where to replay from.
   */
  checkpointMeta(partition: number, budgetBytes = META_BUDGET_BYTES): (CheckpointMeta & { dropped?: number }) | null {
    const ps = this.partitions.get(partition);
    return ps === undefined ? null : this.durableMeta(ps, budgetBytes);
  }

  /** The checkpoint of what is in Redis (the clock as of the last write, not of the buffer). */
  private durableMeta(ps: PartitionState, budgetBytes = META_BUDGET_BYTES): (CheckpointMeta & { dropped?: number }) | null {
    const c = ps.durable;
    if (c === null || c.streamTime === null) return null;
    const { hopMs: P } = this.plan.plan.window;
    return fitMeta({
      st: c.streamTime, lc: c.lastClosed, iw: c.idleWatermark, rf: this.replayFrom(ps),
      a: encodeEnds(ps.anchors, c.lastClosed, P), r: encodeEnds(ps.recent, c.lastClosed, P),
    }, budgetBytes);
  }

  /**
   * Processes one batch of one partition: folds it into the partition's buffer and, when due,
   * flushes the buffer to Redis and closes windows. When the result carries `commit`, everything
   * before that offset is durable and every alert of the windows closed is acknowledged.
   */
  async onBatch(partition: number, records: DetectorRecord[], highWatermark: number | null): Promise<BatchResult> {
    const ps = await this.partition(partition);
    // The consumer delivers batches from where it was last sent (stale ones never get here).
    ps.seeking = false;
    if (ps.pendingSeek !== null) {
      const seek = this.seekTo(ps, ps.pendingSeek);
      ps.pendingSeek = null;
      return { applied: 0, late: 0, replayed: 0, seek };
    }
    const now = this.opts.now();
    if (ps.buffer.firstOffset === null) ps.bufferSince = now;
    const { late, replayed } = this.preAggregator.run(records, ps.clock, now, {
      knownPanes: ps.panes, rebuildUntil: ps.rebuildUntil, keepReplayedFrom: this.keepReplayedFrom(ps),
    }, ps.buffer);
    if (records.length > 0) this.notePosition(partition, records[records.length - 1].offset, highWatermark);
    const applied = records.length - late - replayed;
    this.events.applied?.(partition, applied);
    if (late > 0) this.events.late?.(partition, late);
    if (replayed > 0) this.events.replayed?.(partition, replayed);
    if (!this.flushDue(ps, now)) return { applied, late, replayed };
    const flushed = await this.flushOrForget(partition, ps);
    return { applied, late, replayed, ...flushed };
  }

  /** Whether the buffer must be written now (see DetectorOptions.flushIntervalMs). */
  private flushDue(ps: PartitionState, now: number): boolean {
    const interval = this.opts.flushIntervalMs ?? 0;
    if (interval <= 0 || ps.buffer.firstOffset === null) return true;
    if (now - ps.bufferSince >= interval) return true;
    if (ps.buffer.records >= (this.opts.maxBufferedRecords ?? DEFAULT_MAX_BUFFERED)) return true;
    // Caught up (on a transactional topic the last record is followed by one commit marker).
    if (ps.highWatermark !== null && ps.lastOffset !== null && ps.lastOffset + 2 >= ps.highWatermark) return true;
    return this.windowsToClose(ps);
  }

  /** True if the watermark has passed a window end that is not closed yet. */
  private windowsToClose(ps: PartitionState): boolean {
    const wm = ps.clock.watermark();
    if (wm === null) return false;
    const { hopMs: P } = this.plan.plan.window;
    const upTo = paneStart(wm, P);
    const { lastClosed } = ps.clock.snapshot();
    if (lastClosed !== null) return upTo > lastClosed;
    let first = Infinity;
    for (const q of ps.panes) first = Math.min(first, q);
    for (const q of ps.buffer.newPanes.keys()) first = Math.min(first, q);
    return first + P <= upTo;
  }

  /**
   * Writes the buffer to Redis, closes the windows the watermark passed, and returns the offset
   * to commit (or the offset to seek to, when Redis turned out to have lost the partition).
   */
  private async flush(partition: number, ps: PartitionState): Promise<{ commit?: number; seek?: number }> {
    const buf = ps.buffer;
    const position = buf.firstOffset;
    const seek = await this.verify(partition, ps, position);
    if (seek !== null) return { seek: this.seekTo(ps, seek) };
    const generation = this.state.generation();
    if (buf.firstOffset !== null) {
      const rebuilding = ps.rebuildUntil !== null;
      const { counts } = await this.state.applyBatch(partition, buf.deltas, ps.clock.snapshot().streamTime, buf.newPanes);
      // The writes went to the server verified before them; if the connection dropped meanwhile,
      // they may have gone to another one: fail, so the records are redelivered and verified again.
      if (this.state.generation() !== generation) {
        ps.buffer = new PaneBuffer();
        throw new DependencyError('redis', 'redis connection changed during the batch');
      }
      for (const [pane, offset] of buf.newPanes) {
        ps.panes.add(pane);
        if (!ps.paneFirstOffsets.has(pane)) ps.paneFirstOffsets.set(pane, offset);
        if (!rebuilding && !this.statsFull()) ps.trusted.add(pane);
      }
      this.noteStats(ps, buf.deltas, counts);
      ps.buffer = new PaneBuffer();
    }
    const next = ps.lastOffset === null ? undefined : ps.lastOffset + 1;
    if (ps.rebuildUntil !== null && next !== undefined && next >= ps.rebuildUntil) ps.rebuildUntil = null;
    ps.durable = ps.clock.snapshot();
    // Mid-rebuild the watermark may already count records that are not back in Redis yet (the
    // batch that found the loss): windows close once the replay has caught up.
    if (ps.rebuildUntil === null) await this.closeWindows(partition, ps);
    ps.durable = ps.clock.snapshot();
    // Mid-rebuild nothing may be committed: the panes are not whole yet.
    if (next === undefined || ps.rebuildUntil !== null) return {};
    ps.flushedPosition = next;
    return { commit: next };
  }

  /** The consumer is sent back to `offset`: the position is there now (caught-up checks). */
  private seekTo(ps: PartitionState, offset: number): number {
    ps.lastOffset = offset > 0 ? offset - 1 : null;
    ps.seeking = true;
    return offset;
  }

  /**
   * flush(), and on failure (Redis down, publish failed) forgets the partition's memory: it is
   * reloaded from Redis, as after a crash, and the buffered records, which Kafka will not
   * redeliver by itself (only the failed batch), are read again from the first of them.
   */
  private async flushOrForget(partition: number, ps: PartitionState): Promise<{ commit?: number; seek?: number }> {
    try {
      return await this.flush(partition, ps);
    } catch (err) {
      const from = ps.buffer.firstOffset;
      // What reloading needs to tell a Redis that lost the partition from one that was only
      // unreachable: the checkpoint of the last write, as if committed at the last flush.
      // The durable clock counts every record seen so far: up to the end of a rebuild in progress.
      const meta = this.durableMeta(ps);
      const seen = Math.max(ps.flushedPosition ?? -Infinity, ps.rebuildUntil ?? -Infinity);
      const at = Number.isFinite(seen) ? seen : from;
      if (meta !== null && at !== null) this.committed.set(partition, { offset: at, meta });
      this.untrustAll(ps);
      this.partitions.delete(partition);
      if (from !== null) this.seekAfterError.set(partition, from);
      throw err;
    }
  }

  /** True if nothing of this partition waits in memory: its position may be committed. */
  durableFor(partition: number): boolean {
    const ps = this.partitions.get(partition);
    return ps === undefined || (ps.buffer.firstOffset === null && ps.rebuildUntil === null && ps.pendingSeek === null);
  }

  /** Flushes every partition with buffered records (shutdown, handover): the offsets to commit. */
  async flushAll(): Promise<Array<{ partition: number; offset: number }>> {
    const commits: Array<{ partition: number; offset: number }> = [];
    for (const [p, ps] of this.partitions) {
      if (ps.buffer.firstOffset === null || ps.pendingSeek !== null) continue;
      const r = await this.flushOrForget(p, ps);
      if (r.commit !== undefined) commits.push({ partition: p, offset: r.commit });
    }
    return commits;
  }

  /**
   * Where the consumer stands in a partition. Called for every batch, including batches of
   * transaction markers only (which never reach onBatch): on a transactional topic the last data
   * record is followed by a commit marker, so only this tells that the partition is caught up.
   * Ignored after a seek until a batch from the new position arrives (PartitionState.seeking).
   */
  notePosition(partition: number, lastOffset: number, highWatermark: number | null): void {
    const ps = this.partitions.get(partition);
    if (ps === undefined || ps.seeking) return;
    if (ps.lastOffset === null || lastOffset > ps.lastOffset) ps.lastOffset = lastOffset;
    if (highWatermark !== null) ps.highWatermark = highWatermark;
  }

  /**
   * High watermarks read from the broker just now (the idle timer's, before it advances a
   * partition). The ones batches carry are from their fetch: after a stall (a batch waiting on
   * Redis holds up the consumer and the timer), a partition that had read to its end then would
   * count as caught up with records written since still unread, and its watermark would jump to
   * the wall clock ahead of them.
   */
  noteHighWatermarks(ends: Map<number, number>): void {
    for (const [p, hw] of ends) {
      const ps = this.partitions.get(p);
      if (ps !== undefined && (ps.highWatermark === null || hw > ps.highWatermark)) ps.highWatermark = hw;
    }
  }

  /** Partitions whose clock would advance on an idle tick now, if upstream is drained. */
  idleCandidates(): number[] {
    const now = this.opts.now();
    return [...this.partitions].filter(([, ps]) => this.caughtUp(ps) && ps.clock.wouldAdvanceIdle(now)).map(([p]) => p);
  }

  private caughtUp(ps: PartitionState): boolean {
    return ps.highWatermark === null || ps.lastOffset === null || ps.lastOffset + 1 >= ps.highWatermark;
  }

  /**
   * Wall-clock timer: advances idle, caught-up partitions and closes their windows.
   * `upstreamDrained` says no record is still on its way to this topic (the router has no
   * backlog): without it an idle partition only means the upstream stalled, and jumping the
   * watermark to the wall clock would make the rest of a replay late.
   */
  async onTick(upstreamDrained = true): Promise<TickResult> {
    const out: TickResult = { seeks: [], commits: [] };
    const now = this.opts.now();
    for (const [p, ps] of this.partitions) {
      if (ps.pendingSeek !== null) continue;
      // A buffer older than the flush interval is written even when no batch comes.
      if (ps.buffer.firstOffset !== null && this.flushDue(ps, now)) {
        let r: { commit?: number; seek?: number };
        try {
          r = await this.flushOrForget(p, ps);
        } catch {
          // Redis is down: the partition reloads on its next batch; its buffered records are
          // read again from the first of them.
          const seek = this.seekAfterError.get(p);
          this.seekAfterError.delete(p);
          if (seek !== undefined) out.seeks.push({ partition: p, offset: seek });
          continue;
        }
        if (r.seek !== undefined) out.seeks.push({ partition: p, offset: r.seek });
        if (r.commit !== undefined) out.commits.push({ partition: p, offset: r.commit });
        continue;
      }
      if (!upstreamDrained || ps.rebuildUntil !== null || ps.buffer.firstOffset !== null) continue;
      if (!ps.clock.wouldAdvanceIdle(now) || !this.caughtUp(ps)) continue;
      // Never close windows on a Redis that lost the panes.
      const seek = await this.verify(p, ps, null);
      if (seek !== null) {
        out.seeks.push({ partition: p, offset: this.seekTo(ps, seek) });
        continue;
      }
      if (ps.clock.advanceIdle(now, this.caughtUp(ps))) {
        await this.closeWindows(p, ps);
        ps.durable = ps.clock.snapshot();
        // The checkpoint moved (last closed window, anchors): commit it with the same position.
        if (ps.lastOffset !== null) out.commits.push({ partition: p, offset: ps.lastOffset + 1 });
      }
    }
    return out;
  }

  /** The watermark and last closed window of each loaded partition. */
  progress(): Map<number, { watermark: number | null; lastClosed: number | null; streamTime: number | null }> {
    const out = new Map<number, { watermark: number | null; lastClosed: number | null; streamTime: number | null }>();
    for (const [p, ps] of this.partitions) {
      const s = ps.clock.snapshot();
      out.set(p, { watermark: ps.clock.watermark(), lastClosed: s.lastClosed, streamTime: s.streamTime });
    }
    return out;
  }

  /** Stops deciding a pane's windows in memory (they are evaluated in Redis) and frees its stats. */
  private untrust(ps: PartitionState, pane: number): void {
    this.statsEntries -= ps.stats.get(pane)?.size ?? 0;
    ps.stats.delete(pane);
    ps.trusted.delete(pane);
  }

  private untrustAll(ps: PartitionState): void {
    for (const byGroup of ps.stats.values()) this.statsEntries -= byGroup.size;
    ps.stats.clear();
    ps.trusted.clear();
  }

  /** At this many PaneStats entries no pane is trusted any more (DetectorOptions.memoryDecisionsMax). */
  private statsFull(): boolean {
    return this.statsEntries >= (this.opts.memoryDecisionsMax ?? DEFAULT_MEMORY_DECISIONS);
  }

  /** Folds written deltas of trusted panes into the partition's PaneStats. */
  private noteStats(ps: PartitionState, deltas: PaneDelta[], counts: number[]): void {
    const fields = this.plan.clauseFields;
    deltas.forEach((d, i) => {
      if (!ps.trusted.has(d.pane)) return;
      let byGroup = ps.stats.get(d.pane);
      if (byGroup === undefined) ps.stats.set(d.pane, (byGroup = new Map()));
      let st = byGroup.get(d.gid);
      if (st === undefined) {
        if (this.statsFull()) {
          // At the cap: this pane's windows go to Redis (always safe), its memory is freed.
          this.untrust(ps, d.pane);
          return;
        }
        const keep = this.plan.valuesFromTopic;
        byGroup.set(d.gid, (st = { count: 0, sets: fields.map(() => []), values: keep ? new Map() : null, key: keep ? d.groupKeyJson : null }));
        this.statsEntries++;
      }
      st.count = counts[i];
      if (st.values !== null) {
        // Every record of the pane is in some delta this detector wrote (a trusted pane): while
        // below the count bound each delta brings its records along.
        if (st.count >= this.plan.pruneAt || d.sources === undefined || d.sources.length !== d.count) st.values = null;
        else for (const r of d.sources) if (!this.keepValues(st.values, r)) { st.values = null; break; }
      }
      for (let j = 0; j < fields.length; j++) {
        const set = st.sets[j];
        if (set === null) continue;
        const values = d.members.get(fields[j].index);
        if (values === undefined) continue;
        for (const v of values) {
          if (set.includes(v)) continue;
          set.push(v);
          if (set.length >= fields[j].k) {
            st.sets[j] = null;
            break;
          }
        }
      }
    });
  }

  /** Adds a kept record's values() (as readBack reads them) to `into`; false when it has neither bytes nor a record. */
  private keepValues(into: Map<number, Set<string>>, r: { value?: Buffer; record?: AuditRecord }): boolean {
    if (r.value !== undefined) {
      const c = this.scratchValues;
      c.truncate(0);
      (this.valuesScanner as KeyedScanner).read(r.value, c);
      for (let i = 0; i < c.length; i++) addTo(into, c.fields[i], c.values[i]);
      return true;
    }
    if (r.record === undefined) return false;
    this.addValues(into, r.record);
    return true;
  }

  /**
   * The group key and values() of a matching window whose panes this detector wrote itself and
   * still holds the values of (PaneStats.values), or null: then they are read back from Kafka.
   */
  private valuesInMemory(ps: PartitionState, ref: WindowRef): WindowRecords | null {
    const { sizeMs: W, hopMs: P } = this.plan.plan.window;
    const members = new Map<number, Set<string>>();
    let key: string | null = null;
    let found = 0;
    for (let q = ref.end - W; q < ref.end; q += P) {
      if (!ps.panes.has(q)) continue;
      if (!ps.trusted.has(q)) return null;
      const st = ps.stats.get(q)?.get(ref.gid);
      if (st === undefined) continue;
      if (st.values === null || st.key === null) return null;
      key = st.key;
      found += st.count;
      for (const [index, set] of st.values) for (const v of set) addTo(members, index, v);
    }
    if (key === null) return null;
    return { groupKey: JSON.parse(key) as GroupKey, members: asArrays(members), found };
  }

  /**
   * False only when the window of `gid` ending at `end` provably cannot match: each of its panes
   * is trusted (or has no data on the partition) and their PaneStats fail the condition: the
   * count is exact, and each clause field's distinct count is known exactly below its K, or to
   * be K or more. Windows answered true are evaluated in Redis as before.
   */
  private mayMatch(ps: PartitionState, gid: string, end: number): boolean {
    const { sizeMs: W, hopMs: P } = this.plan.plan.window;
    const found = this.scratchPanes;
    found.length = 0;
    let count = 0;
    for (let q = end - W; q < end; q += P) {
      if (!ps.panes.has(q)) continue;
      if (!ps.trusted.has(q)) return true;
      const st = ps.stats.get(q)?.get(gid);
      if (st === undefined) continue;
      count += st.count;
      found.push(st);
    }
    if (!this.plan.countCouldMatch(count)) return false;
    // One field at a time, smallest K first; stop at the first clause that cannot hold.
    const fields = this.plan.clauseFields;
    const union = this.scratchUnion;
    for (let j = 0; j < fields.length; j++) {
      const { index, k } = fields[j];
      union.length = 0;
      let saturated = false;
      for (let i = 0; i < found.length && !saturated; i++) {
        const set = found[i].sets[j];
        if (set === null) saturated = true;
        else for (const v of set) if (!union.includes(v)) union.push(v);
        if (union.length >= k) saturated = true;
      }
      if (!this.plan.fieldCouldMatch(index, saturated ? k : union.length, saturated ? Infinity : union.length)) return false;
    }
    return true;
  }

  /**
   * The values() of matching windows from their records, read back from the keyed topic by the
   * offsets their pane records keep (CompiledPlan.valuesFromTopic). A record must be of this rule,
   * group and window: anything else at a stored offset is not counted as found.
   */
  private async readBack(partition: number, refs: WindowRef[], stored: Array<{ members: Map<number, string[]> }>): Promise<WindowRecords[]> {
    const perWindow = stored.map((v) => decodeOffsets(v.members.get(OFFSETS_CODE) ?? []));
    const wanted = new Set<number>();
    for (const list of perWindow) for (const o of list) wanted.add(o);
    const got = wanted.size === 0 ? new Map<number, { key: Buffer | null; value: Buffer | null }>()
      : await (this.opts.keyedRecords as KeyedRecords).read(partition, [...wanted].sort((a, b) => a - b));
    const { sizeMs: W } = this.plan.plan.window;
    const codec = this.codec as KeyedCodec;
    return refs.map((ref, k) => {
      const records: AuditRecord[] = [];
      let groupKey: GroupKey | null = null;
      for (const o of perWindow[k]) {
        const m = got.get(o);
        if (m === undefined || m.value === null) continue;
        let rec;
        try {
          rec = codec.decode(m.value);
        } catch {
          continue;
        }
        if (rec.rule !== this.plan.id || rec.eventTime < ref.end - W || rec.eventTime >= ref.end) continue;
        if (groupId(groupKafkaKey(rec.group)) !== ref.gid) continue;
        groupKey = rec.group;
        records.push(rec.record);
      }
      return { groupKey, members: this.valuesOf(records), found: records.length };
    });
  }

  /** values() of each field some values() aggregate reads, over these records (as the pane records held them). */
  private valuesOf(records: AuditRecord[]): Map<number, string[]> {
    const out = new Map<number, Set<string>>();
    for (const r of records) this.addValues(out, r);
    return asArrays(out);
  }

  /** Adds one record's values() to `into`, read as the pre-aggregation reads a decoded record. */
  private addValues(into: Map<number, Set<string>>, record: AuditRecord): void {
    for (const f of this.plan.fields) {
      if (!f.needValues) continue;
      const v = f.accessor.readRaw(record);
      if (v === null || v === undefined) continue;
      for (const x of Array.isArray(v) ? v : [v]) addTo(into, f.index, storedValue(x, false));
    }
  }

  private async closeWindows(partition: number, ps: PartitionState): Promise<void> {
    const { sizeMs: W, hopMs: P } = this.plan.plan.window;
    const wm = ps.clock.watermark();
    this.events.watermark?.(partition, wm);
    if (wm === null) return;
    const upTo = paneStart(wm, P);
    const snap = ps.clock.snapshot();
    let from: number;
    if (snap.lastClosed !== null) from = snap.lastClosed + P;
    else if (ps.panes.size > 0) from = Math.min(...ps.panes) + P;
    else return;
    if (from > upTo) return;

    // Only windows whose content changed can change their outcome: those where a pane with data
    // enters (newest pane) or leaves, and those after a recent match (for suppression counting).
    const ends = new Set<number>();
    const inRange = (e: number): void => { if (e >= from && e <= upTo) ends.add(e); };
    for (const q of ps.panes) { inRange(q + P); inRange(q + W + P); }
    for (const m of ps.recent.values()) for (let e = m + P; e <= m + W; e += P) inRange(e);

    const matched: WindowRef[] = [];
    const alerted: WindowRef[] = [];
    const alerts: Alert[] = [];
    // Decisions are made on copies: if publishing fails, the batch is redelivered and decided again.
    const anchors = new Map(ps.anchors);
    const recent = new Map(ps.recent);
    let suppressed = 0;
    let resent = 0;
    /** Matches none of whose records could be read back (valuesIncomplete): not published. */
    let unreadable = 0;
    const publishedRefs: WindowRef[] = [];
    const sentUncommitted = this.sentUncommitted.get(partition);
    const pending = [...ends].sort((a, b) => a - b);
    while (pending.length > 0) {
      const e = pending.shift() as number;
      const panes = [e - P, e - W - P].filter((q) => ps.panes.has(q));
      // Trusted panes list their groups in memory; the others are read from Redis.
      const remote = panes.filter((q) => !ps.trusted.has(q));
      const active = remote.length > 0 ? await this.state.activeGroups(partition, remote) : new Map<number, string[]>();
      const cands = new Set<string>([...(active.get(e - P) ?? []), ...(active.get(e - W - P) ?? [])]);
      for (const q of panes) {
        const byGroup = ps.trusted.has(q) ? ps.stats.get(q) : undefined;
        if (byGroup !== undefined) for (const gid of byGroup.keys()) cands.add(gid);
      }
      for (const [gid, m] of recent) if (m < e && e <= m + W) cands.add(gid);
      const work: WindowRef[] = [];
      for (const gid of cands) {
        if (this.mayMatch(ps, gid, e)) work.push({ gid, end: e });
        else this.skippedWindows++;
      }
      this.evaluatedWindows += work.length;
      const hits: Array<{ ref: WindowRef; agg: WindowAggregates }> = [];
      for (let j = 0; j < work.length; j += EVAL_CHUNK) {
        const part = work.slice(j, j + EVAL_CHUNK);
        const aggs = await this.state.evalCounts(partition, part);
        aggs.forEach((agg, k) => { if (this.plan.matches(agg)) hits.push({ ref: part[k], agg }); });
      }
      if (hits.length === 0) continue;
      const toAlert: typeof hits = [];
      for (const h of hits) {
        const { gid } = h.ref;
        matched.push(h.ref);
        // A match keeps the group a candidate for the next W: its later windows may re-match
        // with unchanged content, and suppression must see them.
        if (!recent.has(gid) || (recent.get(gid) as number) < e) recent.set(gid, e);
        for (let next = e + P; next <= Math.min(e + W, upTo); next += P) {
          if (!pending.includes(next)) pending.push(next);
        }
        // An anchor after this window comes from a crashed earlier run: ignore it so the
        // decisions replay identically in window order.
        const anchor = anchors.get(gid) ?? null;
        if (anchor !== null && anchor < e && e < anchor + this.opts.suppressionMs) {
          suppressed++;
          continue;
        }
        anchors.set(gid, e);
        alerted.push(h.ref);
        // Published by this process already, and then Redis failed before the anchor was
        // written (the partition was reloaded): not sent again.
        if (sentUncommitted?.has(`${gid}:${e}`) === true) {
          resent++;
          continue;
        }
        toAlert.push(h);
      }
      pending.sort((a, b) => a - b);
      if (toAlert.length > 0) {
        const refs = toAlert.map((h) => h.ref);
        let values: Array<WindowRecords | { groupKey: GroupKey | null; members: Map<number, string[]> }>;
        if (this.plan.valuesFromTopic) {
          // From memory where this detector wrote every pane; the rest read back from Kafka.
          const known = refs.map((ref) => this.valuesInMemory(ps, ref));
          const rest = refs.filter((_, k) => known[k] === null);
          const read = rest.length === 0 ? [] : await this.readBack(partition, rest, await this.state.evalValues(partition, rest));
          let j = 0;
          values = known.map((v) => v ?? read[j++]);
        } else {
          values = await this.state.evalValues(partition, refs);
        }
        const createdAt = this.opts.now();
        toAlert.forEach((h, k) => {
          const v = values[k];
          if (this.plan.valuesFromTopic) {
            const found = (v as WindowRecords).found;
            if (found < h.agg.count) this.events.valuesIncomplete?.(partition, h.ref.gid, e, h.agg.count - found, h.agg.count);
            if (v.groupKey === null) {
              unreadable++;
              return;
            }
          }
          if (v.groupKey === null) throw new Error(`group ${h.ref.gid} matched but its key is missing in Redis`);
          alerts.push(buildAlert(this.plan, v.groupKey, e, h.agg, v.members, createdAt));
          publishedRefs.push(h.ref);
        });
      }
    }
    // Publish (acked) before marking sent: a crash in between re-sends the same ids. Until the
    // commit below is durable, this process remembers what it sent (a failed commit reloads the
    // partition from Redis, which decides the same windows again).
    if (alerts.length > 0) {
      await this.sink.publish(alerts);
      const sent = this.sentUncommitted.get(partition) ?? new Set<string>();
      for (const ref of publishedRefs) sent.add(`${ref.gid}:${ref.end}`);
      this.sentUncommitted.set(partition, sent);
    }
    ps.clock.markClosed(upTo);
    const retired = [...ps.panes].filter((q) => q + W + P <= upTo);
    for (const q of retired) {
      ps.panes.delete(q);
      ps.paneFirstOffsets.delete(q);
      this.untrust(ps, q);
    }
    for (const [g, m] of recent) if (m + W <= upTo) recent.delete(g);
    const anchorsBefore = upTo - this.opts.suppressionMs;
    for (const [g, a] of anchors) if (a < anchorsBefore) anchors.delete(g);
    ps.recent = recent;
    ps.anchors = anchors;
    await this.state.commit(partition, {
      clock: ps.clock.snapshot(), matched, alerted, anchorsBefore, retiredPanes: retired, rebuildUntil: ps.rebuildUntil,
    });
    this.sentUncommitted.delete(partition);
    this.events.windowsClosed?.(partition, (upTo - from) / P + 1);
    if (matched.length > 0) this.events.matched?.(alerted.length - resent - unreadable, suppressed);
  }
}

function addTo(into: Map<number, Set<string>>, index: number, v: string): void {
  let set = into.get(index);
  if (set === undefined) into.set(index, (set = new Set()));
  set.add(v);
}

function asArrays(sets: Map<number, Set<string>>): Map<number, string[]> {
  return new Map([...sets].map(([i, set]) => [i, [...set]]));
}
