/**
 * Version of the key layout, part of every hash tag: a detector of another layout finds no
 * checkpoint and rebuilds its partitions from the keyed topic instead of misreading them.
 */
export const STATE_LAYOUT = 5;

/**
 * Every Redis key kade writes, built in one place. Every key of one keyed partition, its pane
 * hashes included, shares the hash tag {<rule>:v<layout>:p<partition>}: one Lua call
 * updates or evaluates many groups of a partition in one slot, so it works unchanged on Redis
 * Cluster, and the partitions spread over the cluster's slots.
 */
export class KeyBuilder {
  private readonly parts = new Map<number, string>();

  constructor(private readonly prefix: string, private readonly ruleKey: string) {}

  private part(partition: number): string {
    let tag = this.parts.get(partition);
    if (tag === undefined) this.parts.set(partition, (tag = `${this.prefix}:{${this.ruleKey}:v${STATE_LAYOUT}:p${partition}}`));
    return tag;
  }

  /**
   * HASH: one pane of this partition, a field per group with data in it (field = group id,
   * value = the group's pane record: count, last applied offset, group key, values; format in
   * updatePanes-N.lua). The pane start is written in base 36 to keep every key short. One key per
   * pane, not per (group, pane): ~100 B less per pair, and HKEYS lists the pane's groups.
   */
  paneHash(partition: number, pane: number): string {
    return `${this.part(partition)}:q:${pane.toString(36)}`;
  }

  /** HyperLogLog of one field of one group's pane, once it passed the exact threshold. */
  paneHll(partition: number, gid: string, pane: number, field: number): string {
    return `${this.part(partition)}:${gid}:${pane.toString(36)}:h${field}`;
  }

  /** Scratch key for merging exact sets with HyperLogLogs during one evaluation call. */
  scratch(partition: number): string {
    return `${this.part(partition)}:tmp`;
  }

  /** ZSET of panes with data on this partition (score = member = pane start). */
  activePanes(partition: number): string {
    return `${this.part(partition)}:panes`;
  }

  /** ZSET group id -> end of the last window in which the group matched (alerted or suppressed). */
  recentMatches(partition: number): string {
    return `${this.part(partition)}:recent`;
  }

  /** HASH pane start -> offset of the first record of that pane seen on this partition (replay start). */
  paneFirstOffsets(partition: number): string {
    return `${this.part(partition)}:pfo`;
  }

  /** ZSET group id -> end of the window of the group's last alert (suppression anchor). */
  anchors(partition: number): string {
    return `${this.part(partition)}:anchors`;
  }

  /** HASH streamTime, lastClosed, idleWatermark, rebuildUntil of this partition. */
  checkpoint(partition: number): string {
    return `${this.part(partition)}:ckpt`;
  }

  /** Pattern matching every key of this rule, every layout (for tests and tools). */
  pattern(): string {
    return `${this.prefix}:{${this.ruleKey}:*`;
  }
}
