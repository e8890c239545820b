import { GroupKey, WindowAggregates } from '../detect/compiled-plan';
import { ClockState } from '../window/partition-clock';
import { PaneDelta } from './pane-delta';

export interface PartitionSnapshot {
  clock: ClockState;
  /** Panes with data on this partition that some unevaluated window may still hold. */
  panes: number[];
  /** group id -> end of the last window in which it matched. */
  recent: Map<string, number>;
}

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
  /** Panes no window can read any more. */
  retiredPanes: number[];
}

/**
 * What the detector needs from its state store. Every method is durable on return; a failure
 * is a DependencyError (retriable) or a bug.
 */
export interface DetectorState {
  applyBatch(partition: number, deltas: PaneDelta[], activeByPane: Map<number, Set<string>>, streamTime: number | null): Promise<{ replayed: number }>;
  loadPartition(partition: number): Promise<PartitionSnapshot>;
  activeGroups(partition: number, panes: number[]): Promise<Map<number, string[]>>;
  evalCounts(windows: WindowRef[]): Promise<WindowAggregates[]>;
  evalValues(windows: WindowRef[]): Promise<WindowValues[]>;
  readSuppression(gids: string[]): Promise<Map<string, number | null>>;
  commit(partition: number, input: CommitInput): Promise<void>;
}
