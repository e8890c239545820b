import { GroupKey, WindowAggregates } from '../detect/compiled-plan';
import { ClockState } from '../window/partition-clock';
import { PaneDelta } from './pane-delta';

export interface PartitionSnapshot {
  /** False when Redis holds no checkpoint for this partition (never written, or lost). */
  exists: boolean;
  clock: ClockState;
  /** Panes with data on this partition that some unevaluated window may still hold. */
  panes: number[];
  /** pane start -> offset of the first record of that pane on this partition. */
  paneFirstOffsets: Map<number, number>;
  /** group id -> end of the last window in which it matched. */
  recent: Map<string, number>;
  /** group id -> end of the window of its last alert (suppression anchor). */
  anchors: Map<string, number>;
  /** Offsets below this are the replay of a rebuild still in progress, or null. */
  rebuildUntil: number | null;
}

/** Everything a partition keeps in Redis besides pane contents: written back after a loss. */
export type PartitionRestore = Omit<PartitionSnapshot, 'exists'>;

export interface WindowRef {
  gid: string;
  end: number;
}

export interface WindowValues {
  groupKey: GroupKey | null;
  members: Map<number, string[]>;
}

export interface CommitInput {
  clock: ClockState;
  /** Windows that matched (alerted or suppressed). */
  matched: WindowRef[];
  /** Windows that alerted: their end becomes the group's suppression anchor. */
  alerted: WindowRef[];
  /** Anchors ending before this can suppress nothing any more and are dropped. */
  anchorsBefore?: number | null;
  /** Panes no window can read any more. */
  retiredPanes: number[];
  /** Offsets below this are still the replay of a rebuild (null: none). */
  rebuildUntil?: number | null;
}

/**
 * What the detector needs from its state store. Every method is durable on return; a failure
 * is a DependencyError (retriable) or a bug.
 */
export interface DetectorState {
  /**
   * Counts connection losses. Work that spans a change may have run on another server (a Redis
   * restarted empty): the detector verifies its partitions' checkpoints after every change.
   */
  generation(): number;
  /**
   * newPanes: panes first seen in this batch -> offset of their first record. counts[i] is the
   * record count of deltas[i]'s (group, pane) once applied (replays counted once).
   */
  applyBatch(
    partition: number, deltas: PaneDelta[], streamTime: number | null,
    newPanes?: Map<number, number>,
  ): Promise<{ replayed: number; counts: number[] }>;
  loadPartition(partition: number): Promise<PartitionSnapshot>;
  /** Writes a partition's state back (after Redis lost it), before its panes are replayed. */
  restorePartition(partition: number, state: PartitionRestore): Promise<void>;
  activeGroups(partition: number, panes: number[]): Promise<Map<number, string[]>>;
  /** Aggregates of windows of one partition's groups. */
  evalCounts(partition: number, windows: WindowRef[]): Promise<WindowAggregates[]>;
  evalValues(partition: number, windows: WindowRef[]): Promise<WindowValues[]>;
  commit(partition: number, input: CommitInput): Promise<void>;
}
