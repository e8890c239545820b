import { PaneDelta } from '../state/pane-delta';
import { PartitionClock } from '../window/partition-clock';
import { paneStart } from '../window/panes';
import { AuditRecord } from '../ingest/audit-record';
import { GroupKey, TrackedField } from './compiled-plan';
import { capValue } from './cap-value';
import { CollectedValues } from '../ingest/keyed-scan';
import { groupId, groupKafkaKey } from './group-id';
import { storedFormOf } from './value-hash';

/**
 * One record of the keyed topic: decoded (`record`), or read by KeyedScanner, its tracked fields'
 * values at [from, to) of `collected`.
 */
export interface DetectorRecord {
  offset: number;
  eventTime: number;
  /** The group key; may be omitted when kafkaKey is given. */
  group?: GroupKey;
  record?: AuditRecord;
  collected?: CollectedValues;
  from?: number;
  to?: number;
  /** The record's Kafka key, which the router sets to groupKafkaKey(group); computed when absent. */
  kafkaKey?: string;
  /** The keyed record's Avro value (kept with small deltas, see PaneDelta.sources). */
  value?: Buffer;
}

export interface PreAggregated {
  deltas: PaneDelta[];
  /** Panes not in knownPanes -> offset of their first record in this batch. */
  newPanes: Map<number, number>;
  late: number;
  /** Records of a rebuild's replay (offset below rebuildUntil): never late, never moving stream time. */
  replayed: number;
}

export interface PreAggregateOptions {
  /** Panes the partition already has: a pane outside it is new, and its first offset is noted. */
  knownPanes?: ReadonlySet<number>;
  /** Offsets below this are the replay of a rebuild, or null. */
  rebuildUntil?: number | null;
  /** During a replay, records of panes starting before this are skipped (null: keep all). */
  keepReplayedFrom?: number | null;
}

interface GroupEntry {
  gid: string;
  panes: Map<number, PaneDelta>;
}

/**
 * Pane deltas folded from one or more batches of one partition, until they are written to Redis
 * (write-behind: a (group, pane) busy across batches costs one update per flush, not per batch).
 */
export class PaneBuffer {
  readonly groups = new Map<string, GroupEntry>();
  readonly deltas: PaneDelta[] = [];
  /** Panes not known to the partition -> offset of their first record. */
  readonly newPanes = new Map<number, number>();
  /** Records folded in (not late). */
  records = 0;
  /** Offset of the first record of the first batch folded in, or null while nothing is. */
  firstOffset: number | null = null;
}

/** Bound of the group id cache (ids are a SHA-1 each: worth keeping across batches). */
const GID_CACHE_MAX = 200_000;

/**
 * The detector's per-record hot loop: drops late records, advances stream time, and folds the
 * batch into one delta per (group, pane) with the distinct (capped) values of each tracked field.
 */
export class PreAggregator {
  private readonly readers: Array<{ index: number; read: TrackedField['accessor']['readRaw']; hashed: boolean }>;
  private readonly gids = new Map<string, string>();

  /**
   * `fields`: the fields whose values go into pane records (CompiledPlan.storedFields), each in
   * its stored form. Records read by KeyedScanner come with their values in that form already.
   * `sourcesBelow` > 0: a delta keeps its records (PaneDelta.sources) while it counts fewer.
   */
  constructor(fields: TrackedField[], private readonly hopMs: number, private readonly sourcesBelow = 0) {
    this.readers = fields.filter((f) => f.stored).map((f) => ({ index: f.index, read: f.accessor.readRaw, hashed: f.hashed }));
  }

  private gidOf(kafkaKey: string): string {
    let gid = this.gids.get(kafkaKey);
    if (gid === undefined) {
      if (this.gids.size >= GID_CACHE_MAX) this.gids.clear();
      gid = groupId(kafkaKey);
      this.gids.set(kafkaKey, gid);
    }
    return gid;
  }

  /** Folds a batch into `into` (a fresh buffer by default). */
  run(records: DetectorRecord[], clock: PartitionClock, now: number, opts: PreAggregateOptions = {}, into = new PaneBuffer()): PreAggregated {
    const { groups, deltas, newPanes } = into;
    if (into.firstOffset === null && records.length > 0) into.firstOffset = records[0].offset;
    const known = opts.knownPanes;
    const rebuildUntil = opts.rebuildUntil ?? null;
    const keepFrom = opts.keepReplayedFrom ?? null;
    let late = 0;
    let replayed = 0;
    for (const r of records) {
      const pane = paneStart(r.eventTime, this.hopMs);
      if (rebuildUntil !== null && r.offset < rebuildUntil) {
        replayed++;
        if (keepFrom !== null && pane < keepFrom) continue;
      } else if (clock.isLate(r.eventTime)) {
        late++;
        continue;
      } else {
        clock.observe(r.eventTime, now);
      }
      if (known !== undefined && !known.has(pane) && !newPanes.has(pane)) newPanes.set(pane, r.offset);
      const kafkaKey = r.kafkaKey ?? groupKafkaKey(r.group as GroupKey);
      let g = groups.get(kafkaKey);
      if (g === undefined) groups.set(kafkaKey, (g = { gid: this.gidOf(kafkaKey), panes: new Map() }));
      let d = g.panes.get(pane);
      if (d === undefined) {
        d = { gid: g.gid, groupKeyJson: kafkaKey, pane, count: 0, minOffset: r.offset, maxOffset: r.offset, offsets: [], members: new Map() };
        g.panes.set(pane, d);
        deltas.push(d);
      }
      d.count++;
      if (d.count < this.sourcesBelow) (d.sources ??= []).push(r);
      d.offsets.push(r.offset);
      if (r.offset < d.minOffset) d.minOffset = r.offset;
      if (r.offset > d.maxOffset) d.maxOffset = r.offset;
      const c = r.collected;
      if (c !== undefined) {
        const { fields, values } = c;
        for (let i = r.from as number, to = r.to as number; i < to; i++) {
          let set = d.members.get(fields[i]);
          if (set === undefined) d.members.set(fields[i], (set = new Set()));
          set.add(values[i]);
        }
        continue;
      }
      if (r.record === undefined) throw new Error('detector record without record or value');
      for (const t of this.readers) {
        const v = t.read(r.record);
        if (v === null || v === undefined) continue;
        const many = Array.isArray(v);
        if (many && v.length === 0) continue;
        let set = d.members.get(t.index);
        if (set === undefined) d.members.set(t.index, (set = new Set()));
        if (!many) set.add(storedValue(v, t.hashed));
        else for (const x of v) set.add(storedValue(x, t.hashed));
      }
    }
    into.records += records.length - late;
    return { deltas, newPanes, late, replayed };
  }
}

/** A field value as the pane records hold it (capped, and in short form for hashed fields). */
export function storedValue(v: string | number | boolean, hashed: boolean): string {
  const s = typeof v === 'string' ? capValue(v) : String(v);
  return hashed ? storedFormOf(s) : s;
}
