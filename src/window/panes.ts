/**
 * Epoch-aligned pane and window arithmetic (pure).
 *
 * A window is [end - size, end) for every end that is a multiple of the hop; a pane is one
 * hop-sized slice [start, start + hop). A window is the union of its size / hop panes.
 */
export interface WindowSpec {
  /** Window size in ms (the rule's look-back). */
  sizeMs: number;
  /** Hop in ms; sizeMs must be a multiple of it. */
  hopMs: number;
}

export function validateWindowSpec(spec: WindowSpec): void {
  if (!Number.isInteger(spec.hopMs) || spec.hopMs <= 0) throw new Error(`window hop must be a positive integer of ms, got ${spec.hopMs}`);
  if (!Number.isInteger(spec.sizeMs) || spec.sizeMs <= 0 || spec.sizeMs % spec.hopMs !== 0) {
    throw new Error(`window size must be a positive multiple of the hop (${spec.hopMs} ms), got ${spec.sizeMs}`);
  }
}

/** Start of the pane that holds event time t. */
export function paneStart(t: number, hopMs: number): number {
  return Math.floor(t / hopMs) * hopMs;
}

/** Ends of the windows that contain the pane starting at `pane`, oldest first. */
export function windowEndsOfPane(pane: number, spec: WindowSpec): number[] {
  const ends: number[] = [];
  for (let end = pane + spec.hopMs; end <= pane + spec.sizeMs; end += spec.hopMs) ends.push(end);
  return ends;
}

/** Pane starts of the window ending at `end`, oldest first. */
export function panesOfWindow(end: number, spec: WindowSpec): number[] {
  const panes: number[] = [];
  for (let p = end - spec.sizeMs; p < end; p += spec.hopMs) panes.push(p);
  return panes;
}

/** The last window end that contains the pane: after it closes, the pane can change nothing. */
export function lastWindowEndOfPane(pane: number, spec: WindowSpec): number {
  return pane + spec.sizeMs;
}

/** Largest window end <= t. */
export function windowEndAtOrBefore(t: number, hopMs: number): number {
  return paneStart(t, hopMs);
}
