import { WindowSpec, lastWindowEndOfPane, paneStart, windowEndAtOrBefore } from './panes';

/**
 * Stream time and watermark of one partition.
 *
 * Two drivers, named for what drives them: stream time (max event time seen) moves the
 * watermark as records arrive; the wall clock moves it when the partition is idle, so the last
 * windows close without new traffic.
 */
export interface ClockState {
  /** Max event time seen (ms), or null before the first record. */
  streamTime: number | null;
  /** End of the last window evaluated (ms), or null if none yet. */
  lastClosed: number | null;
  /** Watermark advanced by idleness (ms), or null. */
  idleWatermark: number | null;
}

export class PartitionClock {
  private state: ClockState;
  private lastRecordWallMs: number;

  constructor(
    private readonly spec: WindowSpec,
    private readonly latenessMs: number,
    private readonly idleTimeoutMs: number,
    initial: ClockState,
    nowMs: number,
  ) {
    this.state = { ...initial };
    this.lastRecordWallMs = nowMs;
  }

  snapshot(): ClockState {
    return { ...this.state };
  }

  /** Watermark: no window ending at or before it will receive more (on-time) events. */
  watermark(): number | null {
    const fromStream = this.state.streamTime === null ? null : this.state.streamTime - this.latenessMs;
    const idle = this.state.idleWatermark;
    if (fromStream === null) return idle;
    if (idle === null) return fromStream;
    return Math.max(fromStream, idle);
  }

  /**
   * True when every window containing event time t has been evaluated already: the event can
   * change no result and is counted as late.
   */
  isLate(eventTime: number): boolean {
    const closed = this.state.lastClosed;
    return closed !== null && lastWindowEndOfPane(paneStart(eventTime, this.spec.hopMs), this.spec) <= closed;
  }

  /** Records that an on-time record with this event time arrived at wall time nowMs. */
  observe(eventTime: number, nowMs: number): void {
    if (this.state.streamTime === null || eventTime > this.state.streamTime) this.state.streamTime = eventTime;
    this.lastRecordWallMs = nowMs;
  }

  /** Marks the partition as seen busy (records pending) so idleness restarts from now. */
  touch(nowMs: number): void {
    this.lastRecordWallMs = nowMs;
  }

  /**
   * The idle watermark at wall time nowMs: now - lateness, down to a window end. Windows close at
   * the same moments as with now - lateness itself, but the watermark (and the checkpoint that
   * carries it, committed with the offsets) moves once per hop instead of on every timer tick.
   */
  private idleCandidate(nowMs: number): number {
    return windowEndAtOrBefore(nowMs - this.latenessMs, this.spec.hopMs);
  }

  /** True if advanceIdle(nowMs, true) would move the watermark. */
  wouldAdvanceIdle(nowMs: number): boolean {
    if (this.state.streamTime === null || nowMs - this.lastRecordWallMs < this.idleTimeoutMs) return false;
    const current = this.watermark();
    return current === null || this.idleCandidate(nowMs) > current;
  }

  /**
   * Wall-clock timer: after idleTimeout without records on a caught-up partition, the watermark
   * follows the wall clock (now - lateness, by whole hops): any record that still comes has an
   * event time near now. Returns true if the watermark moved.
   */
  advanceIdle(nowMs: number, caughtUp: boolean): boolean {
    // A partition that never saw data has no window to close; an idle watermark set now would
    // make its first records late.
    if (this.state.streamTime === null) return false;
    if (!caughtUp || nowMs - this.lastRecordWallMs < this.idleTimeoutMs) return false;
    const candidate = this.idleCandidate(nowMs);
    const current = this.watermark();
    if (current !== null && candidate <= current) return false;
    this.state.idleWatermark = candidate;
    return true;
  }

  /**
   * Window ends that the watermark has passed and that are not evaluated yet, oldest first,
   * limited to windows that can hold data (from the first pane seen). `firstPane` is the oldest
   * pane with data, used when nothing has been closed yet.
   */
  closableWindowEnds(firstPane: number | null): number[] {
    const wm = this.watermark();
    if (wm === null) return [];
    const upTo = windowEndAtOrBefore(wm, this.spec.hopMs);
    let from: number;
    if (this.state.lastClosed !== null) from = this.state.lastClosed + this.spec.hopMs;
    else if (firstPane !== null) from = firstPane + this.spec.hopMs;
    else return [];
    const ends: number[] = [];
    for (let end = from; end <= upTo; end += this.spec.hopMs) ends.push(end);
    return ends;
  }

  markClosed(end: number): void {
    if (this.state.lastClosed === null || end > this.state.lastClosed) this.state.lastClosed = end;
  }
}
