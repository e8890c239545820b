/**
 * Every Redis key kade writes, built in one place. All keys of one group share the hash tag
 * {<rule>:<group id>}; all keys of one partition share {<rule>:p<partition>}; so each Lua call
 * touches one slot and works unchanged on Redis Cluster.
 */
export class KeyBuilder {
  constructor(private readonly prefix: string, private readonly ruleKey: string) {}

  private group(gid: string): string {
    return `${this.prefix}:{${this.ruleKey}:${gid}}`;
  }

  private part(partition: number): string {
    return `${this.prefix}:{${this.ruleKey}:p${partition}}`;
  }

  /**
   * STRING: the pane record of one group (count, last applied offset, group key, values; format
   * in updatePane-N.lua). The pane start is written in base 36 to keep every key short.
   */
  paneRecord(gid: string, pane: number): string {
    return `${this.group(gid)}:${pane.toString(36)}`;
  }

  /** HyperLogLog of one field of one pane, once it passed the exact threshold. */
  paneHll(gid: string, pane: number, field: number): string {
    return `${this.group(gid)}:${pane.toString(36)}:h${field}`;
  }

  /** Scratch key for merging exact sets with HyperLogLogs during one evaluation. */
  scratch(gid: string): string {
    return `${this.group(gid)}:tmp`;
  }

  /** ZSET of panes with data on this partition (score = member = pane start). */
  activePanes(partition: number): string {
    return `${this.part(partition)}:panes`;
  }

  /** SET of group ids active in one pane of this partition. */
  activeGroups(partition: number, pane: number): string {
    return `${this.part(partition)}:a:${pane}`;
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

  /** Pattern matching every key of this rule (for tests and `kade reset`). */
  pattern(): string {
    return `${this.prefix}:{${this.ruleKey}:*`;
  }
}
