import { GroupKey } from '../detect/compiled-plan';
import type { AuditRecord } from '../ingest/audit-record';

/** What one batch adds to one (group, pane): pre-aggregated so each costs one Lua call. */
export interface PaneDelta {
  gid: string;
  /** The group key as JSON (groupKafkaKey), stored with the pane for the alert. */
  groupKeyJson: string;
  pane: number;
  count: number;
  minOffset: number;
  maxOffset: number;
  /** Offsets of the counted records, sent only to resolve a partial replay. */
  offsets: number[];
  /** Members per tracked field index (values as strings). */
  members: Map<number, Set<string>>;
  /**
   * The delta's records while it holds fewer than the rule's count bound (values() read back,
   * CompiledPlan.valuesFromTopic): the detector keeps the values() of panes it wrote itself from
   * them, so their alerts need no read from Kafka.
   */
  sources?: Array<{ value?: Buffer; record?: AuditRecord }>;
}

export interface UpdatePaneParams {
  ttlSeconds: number;
  pruneAt: number;
  exactThreshold: number;
  /** Field indexes that may switch to a HyperLogLog (count_distinct only). */
  switchable: number[];
  /**
   * Each delta's record offsets go into its pane record (one OFFSETS_CODE entry), its group key
   * does not (CompiledPlan.valuesFromTopic).
   */
  keepOffsets?: boolean;
}

/**
 * The offsets of a delta's records as one entry value: the smallest in base 36, then the gaps
 * to the next, comma-separated (11.7 records of a pane record take ~30 bytes on the bench mix).
 * A replay cut into other batches writes other entries with the same offsets: decodeOffsets
 * returns each offset once.
 */
export function encodeOffsets(offsets: readonly number[]): string {
  const sorted = offsets.length < 2 || isSorted(offsets) ? offsets : [...offsets].sort((a, b) => a - b);
  let out = '';
  let prev = 0;
  for (let i = 0; i < sorted.length; i++) {
    const o = sorted[i];
    if (i > 0 && o === prev) continue;
    out += i === 0 ? o.toString(36) : `,${(o - prev).toString(36)}`;
    prev = o;
  }
  return out;
}

function isSorted(a: readonly number[]): boolean {
  for (let i = 1; i < a.length; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

/** The distinct offsets of OFFSETS_CODE entry values, ascending. Throws on a malformed value. */
export function decodeOffsets(values: Iterable<string>): number[] {
  const all = new Set<number>();
  for (const v of values) {
    let prev = 0;
    v.split(',').forEach((part, i) => {
      const n = parseInt(part, 36);
      if (!/^[0-9a-z]+$/.test(part) || !Number.isSafeInteger(n)) throw new Error(`pane record: bad offsets entry ${JSON.stringify(v)}`);
      prev = i === 0 ? n : prev + n;
      all.add(prev);
    });
  }
  return [...all].sort((a, b) => a - b);
}

/**
 * A pane record (one field per group of its pane's Redis HASH, see updatePanes-N.lua) is a header line
 * `<count> <last offset>[ x][ h<i>,<j>...]\n` followed by entries: one byte field code, the value's
 * UTF-8 length (one byte below 128, else two bytes: 128 + high, low), the value. Field code 255
 * holds the group key, code 254 the offsets of a delta's records (when values() are re-read from
 * the keyed topic, CompiledPlan.valuesFromTopic; then there is no group key entry). Entries are
 * canonical, so equal bytes mean equal (field, value).
 */
export const GROUP_KEY_CODE = 255;
export const OFFSETS_CODE = 254;
/** Field indexes must fit the one-byte code below OFFSETS_CODE. */
export const MAX_FIELD_CODE = 253;
/** Longest value an entry can hold; capValue keeps stored values far below it (<= 3 KiB). */
export const MAX_ENTRY_BYTES = 0x7fff;

/** Appends the entry for (code, value) to out at pos; returns the new position. */
function writeEntry(out: Buffer, pos: number, code: number, value: string, bytes: number): number {
  out[pos++] = code;
  if (bytes < 128) {
    out[pos++] = bytes;
  } else {
    out[pos++] = 128 + (bytes >> 8);
    out[pos++] = bytes & 0xff;
  }
  return pos + out.write(value, pos, 'utf8');
}

/** Byte lengths of the values being encoded (reused: no array per entry). */
const lengths: number[] = [];

/**
 * Encodes entries (code, value) into one buffer, the group key first when given, the offsets
 * entry last when given (members is read twice).
 */
export function encodeEntries(
  members: ReadonlyMap<number, Iterable<string>> | ReadonlyArray<[number, Iterable<string>]>,
  groupKeyJson: string | null,
  offsets: string | null = null,
): Buffer {
  let size = 0;
  let n = 0;
  const measure = (code: number, v: string): void => {
    const b = Buffer.byteLength(v, 'utf8');
    if (b > MAX_ENTRY_BYTES) throw new Error(`value of field ${code} is ${b} bytes; a pane entry holds at most ${MAX_ENTRY_BYTES}`);
    lengths[n++] = b;
    size += b + (b < 128 ? 2 : 3);
  };
  if (groupKeyJson !== null) measure(GROUP_KEY_CODE, groupKeyJson);
  for (const [code, values] of members) {
    if (code < 0 || code > MAX_FIELD_CODE) throw new Error(`field index ${code} does not fit a pane entry code`);
    for (const v of values) measure(code, v);
  }
  if (offsets !== null) measure(OFFSETS_CODE, offsets);
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  n = 0;
  if (groupKeyJson !== null) pos = writeEntry(out, pos, GROUP_KEY_CODE, groupKeyJson, lengths[n++]);
  for (const [code, values] of members) for (const v of values) pos = writeEntry(out, pos, code, v, lengths[n++]);
  if (offsets !== null) pos = writeEntry(out, pos, OFFSETS_CODE, offsets, lengths[n++]);
  return out;
}

/** Decodes entries; calls fn(code, value) for each. Throws on a truncated buffer. */
export function decodeEntries(buf: Buffer, start: number, fn: (code: number, value: string) => void): void {
  let pos = start;
  while (pos < buf.length) {
    const code = buf[pos];
    let len = buf[pos + 1];
    let from = pos + 2;
    if (len >= 128) {
      len = (len - 128) * 256 + buf[pos + 2];
      from = pos + 3;
    }
    const to = from + len;
    if (Number.isNaN(len) || to > buf.length) throw new Error('pane record: truncated entry');
    fn(code, buf.toString('utf8', from, to));
    pos = to;
  }
}

/** Lists each pane's hash once at the start of KEYS; returns its 1-based index in KEYS (Lua's). */
function paneHashIndexer(keyList: string[], hashOf: (pane: number) => string): (pane: number) => number {
  const index = new Map<number, number>();
  return (pane) => {
    let i = index.get(pane);
    if (i === undefined) {
      keyList.push(hashOf(pane));
      index.set(pane, (i = keyList.length));
    }
    return i;
  };
}

/**
 * Builds KEYS and ARGV of updatePanes-N.lua for deltas of one partition (pure). The first attempt
 * sends neither offsets nor HyperLogLog keys; a delta answered -1 or -2 is sent again with both.
 */
export function buildUpdatePanesArgs(
  keys: { hash: (pane: number) => string; hll: (delta: PaneDelta, field: number) => string },
  deltas: PaneDelta[],
  params: UpdatePaneParams,
  retry: boolean,
): { keys: string[]; args: Array<string | number | Buffer> } {
  // The pane hashes of the call come first in KEYS, then the HyperLogLog keys of a retry.
  const keyList: string[] = [];
  const hashIndex = paneHashIndexer(keyList, keys.hash);
  const paneIndexes = deltas.map((d) => hashIndex(d.pane));
  const args: Array<string | number | Buffer> = [
    params.ttlSeconds, params.pruneAt, params.exactThreshold, Buffer.from(params.switchable), deltas.length, keyList.length,
  ];
  deltas.forEach((delta, k) => {
    if (retry) for (const f of params.switchable) keyList.push(keys.hll(delta, f));
    // A delta that alone reaches the prune bound will be pruned: its members would be dropped.
    const prunes = params.pruneAt > 0 && delta.count >= params.pruneAt;
    const entries = prunes ? EMPTY
      : params.keepOffsets === true ? encodeEntries(delta.members, null, encodeOffsets(delta.offsets))
        : encodeEntries(delta.members, delta.groupKeyJson);
    args.push(delta.count, delta.minOffset, delta.maxOffset, entries, retry ? delta.offsets.join(',') : '', retry ? 1 : 0,
      paneIndexes[k], delta.gid);
  });
  return { keys: keyList, args };
}

const EMPTY = Buffer.alloc(0);

/** Parses updatePanes' reply: [status, count] per delta. */
export function parseUpdateReply(reply: unknown, deltas: number): Array<[number, number]> {
  if (!Array.isArray(reply) || reply.length !== 2 * deltas) throw new Error(`updatePanes: unexpected reply ${JSON.stringify(reply)}`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < reply.length; i += 2) out.push([Number(reply[i]), Number(reply[i + 1])]);
  return out;
}

/**
 * Builds KEYS and ARGV of evalWindows-N.lua for windows of one partition (pure): each window is
 * a group and its panes. withHll: send the HyperLogLog keys (mode 'c'), for windows first
 * answered { -2 } (a pane switched).
 */
export function buildEvalWindowsArgs(
  keys: { hash: (pane: number) => string; hll: (window: number, pane: number, field: number) => string; scratch: string },
  windows: Array<{ gid: string; panes: number[] }>,
  switchable: number[],
  distinct: number[],
  mode: 'c' | 'v',
  withHll = false,
): { keys: string[]; args: Array<string | number | Buffer> } {
  const keyList: string[] = [];
  const hashIndex = paneHashIndexer(keyList, keys.hash);
  const p = windows.length > 0 ? windows[0].panes.length : 0;
  const perWindow: Array<string | number> = [];
  for (const { gid, panes } of windows) {
    if (panes.length !== p) throw new Error('evalWindows: every window must have as many panes');
    perWindow.push(gid);
    for (const q of panes) perWindow.push(hashIndex(q));
  }
  const n = keyList.length;
  if (mode === 'c' && withHll) {
    windows.forEach(({ panes }, w) => { for (const f of switchable) for (const q of panes) keyList.push(keys.hll(w, q, f)); });
  }
  if (mode === 'c') keyList.push(keys.scratch);
  const flags = mode === 'c' ? (withHll ? '1' : '0').repeat(windows.length) : '';
  return { keys: keyList, args: [p, mode, Buffer.from(switchable), Buffer.from(distinct), windows.length, flags, n, ...perWindow] };
}

/** Splits evalWindows' reply into one reply per window. */
export function windowReplies(reply: unknown, windows: number): unknown[] {
  if (!Array.isArray(reply) || reply.length !== windows) throw new Error(`evalWindows: unexpected reply ${JSON.stringify(reply)}`);
  return reply;
}

/** True for a window answered { -2 }: evaluate it again with its HyperLogLog keys. */
export function needsHll(reply: unknown): boolean {
  return Array.isArray(reply) && reply.length === 1 && Number(reply[0]) === -2;
}

/** Parses one window's evalWindows reply, mode 'c'. */
export function parseCountsReply(reply: unknown): { count: number; pruned: boolean; distinct: Map<number, number> } {
  if (!Array.isArray(reply) || reply.length < 2) throw new Error(`evalWindows: unexpected reply ${JSON.stringify(reply)}`);
  const distinct = new Map<number, number>();
  for (let i = 2; i + 1 < reply.length; i += 2) distinct.set(Number(reply[i]), Number(reply[i + 1]));
  return { count: Number(reply[0]), pruned: Number(reply[1]) === 1, distinct };
}

/**
 * Parses one window's evalWindows reply, mode 'v' (its pane records, as Buffers, null when absent)
 * into the group key and the union of the members per field.
 */
export function parseValuesReply(reply: unknown): { groupKey: GroupKey | null; members: Map<number, string[]> } {
  if (!Array.isArray(reply)) throw new Error(`evalWindows: unexpected reply ${JSON.stringify(reply)}`);
  let groupKey: GroupKey | null = null;
  const sets = new Map<number, Set<string>>();
  for (const rec of reply) {
    if (rec === null) continue;
    if (!Buffer.isBuffer(rec)) throw new Error(`evalWindows: pane record is not a buffer: ${JSON.stringify(rec)}`);
    const nl = rec.indexOf(10);
    if (nl < 0) throw new Error('pane record: no header');
    decodeEntries(rec, nl + 1, (code, value) => {
      if (code === GROUP_KEY_CODE) {
        if (groupKey === null) groupKey = JSON.parse(value) as GroupKey;
        return;
      }
      let set = sets.get(code);
      if (set === undefined) sets.set(code, (set = new Set()));
      set.add(value);
    });
  }
  const members = new Map<number, string[]>();
  for (const [code, set] of sets) members.set(code, [...set]);
  return { groupKey, members };
}
