import { Alert, buildAlert } from '../alerts/alert';
import { DetectorState, WindowRef } from '../state/detector-state';
import { PartitionClock } from '../window/partition-clock';
import { paneStart } from '../window/panes';
import { CompiledPlan, GroupKey, WindowAggregates } from './compiled-plan';
import { DetectorRecord, PreAggregator } from './pre-aggregate';

export type { DetectorRecord };

/** Publishes alerts; resolves once every alert is acknowledged by the broker. */
export interface AlertSink {
  publish(alerts: Alert[]): Promise<void>;
}

export interface DetectorOptions {
  latenessMs: number;
  idleTimeoutMs: number;
  suppressionMs: number;
  /** Wall clock (injected for tests). */
  now: () => number;
}

export interface DetectorEvents {
  applied(partition: number, n: number): void;
  late(partition: number, n: number): void;
  windowsClosed(partition: number, n: number): void;
  matched(alerted: number, suppressed: number): void;
  watermark(partition: number, watermarkMs: number | null): void;
}

interface PartitionState {
  clock: PartitionClock;
  panes: Set<number>;
  recent: Map<string, number>;
  /** Last offset processed and the high watermark seen with it: caught up when they meet. */
  lastOffset: number | null;
  highWatermark: number | null;
}

/** Windows evaluated per pipelined round trip. */
const EVAL_CHUNK = 2000;

/**
 * The detector stage for one rule: per-partition stream time and watermark, batch
 * pre-aggregation into pane deltas, window closing, candidate evaluation, suppression. It returns
 * alerts to the sink and marks them sent only after the sink acknowledged them.
 */
export class Detector {
  private readonly partitions = new Map<number, PartitionState>();
  private readonly preAggregator: PreAggregator;

  constructor(
    private readonly plan: CompiledPlan,
    private readonly state: DetectorState,
    private readonly sink: AlertSink,
    private readonly opts: DetectorOptions,
    private readonly events: Partial<DetectorEvents> = {},
  ) {
    this.preAggregator = new PreAggregator(plan.fields, plan.plan.window.hopMs);
  }

  /** Forgets in-memory state of all partitions; it is reloaded from Redis on next use. */
  reset(): void {
    this.partitions.clear();
  }

  assignedPartitions(): number[] {
    return [...this.partitions.keys()];
  }

  private async partition(p: number): Promise<PartitionState> {
    let ps = this.partitions.get(p);
    if (ps !== undefined) return ps;
    const snap = await this.state.loadPartition(p);
    ps = {
      clock: new PartitionClock(this.plan.plan.window, this.opts.latenessMs, this.opts.idleTimeoutMs, snap.clock, this.opts.now()),
      panes: new Set(snap.panes),
      recent: snap.recent,
      lastOffset: null,
      highWatermark: null,
    };
    this.partitions.set(p, ps);
    return ps;
  }

  /** Makes sure a partition's state is loaded (e.g. on assignment), so idle ticks can close it. */
  async ensure(partition: number): Promise<void> {
    await this.partition(partition);
  }

  /**
   * Processes one batch of one partition. On return the batch's effects are durable in Redis
   * and every alert of the windows it closed is acknowledged: the caller may commit the offsets.
   */
  async onBatch(partition: number, records: DetectorRecord[], highWatermark: number | null): Promise<{ applied: number; late: number }> {
    const ps = await this.partition(partition);
    const { deltas, activeByPane, late } = this.preAggregator.run(records, ps.clock, this.opts.now());
    await this.state.applyBatch(partition, deltas, activeByPane, ps.clock.snapshot().streamTime);
    for (const pane of activeByPane.keys()) ps.panes.add(pane);
    if (records.length > 0) this.notePosition(partition, records[records.length - 1].offset, highWatermark);
    this.events.applied?.(partition, records.length - late);
    if (late > 0) this.events.late?.(partition, late);
    await this.closeWindows(partition, ps);
    return { applied: records.length - late, late };
  }

  /**
   * Where the consumer stands in a partition. Called for every batch, including batches of
   * transaction markers only (which never reach onBatch): on a transactional topic the last data
   * record is followed by a commit marker, so only this tells that the partition is caught up.
   */
  notePosition(partition: number, lastOffset: number, highWatermark: number | null): void {
    const ps = this.partitions.get(partition);
    if (ps === undefined) return;
    if (ps.lastOffset === null || lastOffset > ps.lastOffset) ps.lastOffset = lastOffset;
    if (highWatermark !== null) ps.highWatermark = highWatermark;
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
  async onTick(upstreamDrained = true): Promise<void> {
    if (!upstreamDrained) return;
    const now = this.opts.now();
    for (const [p, ps] of this.partitions) {
      if (ps.clock.advanceIdle(now, this.caughtUp(ps))) await this.closeWindows(p, ps);
    }
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
    const supCache = new Map<string, number | null>();
    let suppressed = 0;
    const pending = [...ends].sort((a, b) => a - b);
    while (pending.length > 0) {
      const e = pending.shift() as number;
      const panes = [e - P, e - W - P].filter((q) => ps.panes.has(q));
      const active = panes.length > 0 ? await this.state.activeGroups(partition, panes) : new Map<number, string[]>();
      const cands = new Set<string>([...(active.get(e - P) ?? []), ...(active.get(e - W - P) ?? [])]);
      for (const [gid, m] of ps.recent) if (m < e && e <= m + W) cands.add(gid);
      const work: WindowRef[] = [...cands].map((gid) => ({ gid, end: e }));
      const hits: Array<{ ref: WindowRef; agg: WindowAggregates }> = [];
      for (let j = 0; j < work.length; j += EVAL_CHUNK) {
        const part = work.slice(j, j + EVAL_CHUNK);
        const aggs = await this.state.evalCounts(part);
        aggs.forEach((agg, k) => { if (this.plan.matches(agg)) hits.push({ ref: part[k], agg }); });
      }
      if (hits.length === 0) continue;
      const unknown = hits.map((h) => h.ref.gid).filter((g) => !supCache.has(g));
      for (const [g, v] of await this.state.readSuppression(unknown)) supCache.set(g, v);
      const toAlert: typeof hits = [];
      for (const h of hits) {
        const { gid } = h.ref;
        matched.push(h.ref);
        // A match keeps the group a candidate for the next W: its later windows may re-match
        // with unchanged content, and suppression must see them.
        if (!ps.recent.has(gid) || (ps.recent.get(gid) as number) < e) ps.recent.set(gid, e);
        for (let next = e + P; next <= Math.min(e + W, upTo); next += P) {
          if (!pending.includes(next)) pending.push(next);
        }
        // An anchor after this window comes from a crashed earlier run: ignore it so the
        // decisions replay identically in window order.
        const anchor = supCache.get(gid) ?? null;
        if (anchor !== null && anchor < e && e < anchor + this.opts.suppressionMs) {
          suppressed++;
          continue;
        }
        supCache.set(gid, e);
        alerted.push(h.ref);
        toAlert.push(h);
      }
      pending.sort((a, b) => a - b);
      if (toAlert.length > 0) {
        const values = await this.state.evalValues(toAlert.map((h) => h.ref));
        const createdAt = this.opts.now();
        toAlert.forEach((h, k) => {
          const v = values[k];
          if (v.groupKey === null) throw new Error(`group ${h.ref.gid} matched but its key is missing in Redis`);
          alerts.push(buildAlert(this.plan, v.groupKey, e, h.agg, v.members, createdAt));
        });
      }
    }
    // Publish (acked) before marking sent: a crash in between re-sends the same ids.
    if (alerts.length > 0) await this.sink.publish(alerts);
    ps.clock.markClosed(upTo);
    const retired = [...ps.panes].filter((q) => q + W + P <= upTo);
    for (const q of retired) ps.panes.delete(q);
    for (const [g, m] of ps.recent) if (m + W <= upTo) ps.recent.delete(g);
    await this.state.commit(partition, { clock: ps.clock.snapshot(), matched, alerted, retiredPanes: retired });
    this.events.windowsClosed?.(partition, (upTo - from) / P + 1);
    if (matched.length > 0) this.events.matched?.(alerted.length, suppressed);
  }
}
