import { GroupKey } from '../detect/compiled-plan';

/** What one batch adds to one (group, pane): pre-aggregated so each costs one Lua call. */
export interface PaneDelta {
  gid: string;
  groupKey: GroupKey;
  pane: number;
  count: number;
  minOffset: number;
  maxOffset: number;
  /** Offsets of the counted records, sent only to resolve a partial replay. */
  offsets: number[];
  /** Members per tracked field index (values as strings). */
  members: Map<number, Set<string>>;
}

export interface UpdatePaneParams {
  ttlSeconds: number;
  pruneAt: number;
  exactThreshold: number;
  /** Field indexes that may switch to a HyperLogLog (count_distinct only). */
  switchable: number[];
}

/** Builds KEYS and ARGV of updatePane-N.lua (pure). */
export function buildUpdatePaneArgs(
  keys: { hash: string; set: string; hll: (field: number) => string },
  delta: PaneDelta,
  params: UpdatePaneParams,
  withOffsets: boolean,
): { keys: string[]; args: Array<string | number> } {
  const keyList = [keys.hash, keys.set];
  const hllPos = new Map<number, number>();
  for (const f of params.switchable) {
    keyList.push(keys.hll(f));
    hllPos.set(f, keyList.length);
  }
  const args: Array<string | number> = [
    delta.count, delta.minOffset, delta.maxOffset, params.ttlSeconds, params.pruneAt,
    params.exactThreshold, JSON.stringify(delta.groupKey),
  ];
  if (withOffsets) {
    args.push(delta.offsets.length);
    for (const o of delta.offsets) args.push(o);
  } else {
    args.push(0);
  }
  // A delta that alone reaches the prune bound will be pruned: its members would be dropped.
  const prunes = params.pruneAt > 0 && delta.count >= params.pruneAt;
  const fields = prunes ? [] : [...delta.members.entries()].filter(([, set]) => set.size > 0);
  args.push(fields.length);
  for (const [idx, set] of fields) {
    args.push(idx, hllPos.get(idx) ?? 0, set.size);
    for (const v of set) args.push(`${idx}:${v}`);
  }
  return { keys: keyList, args };
}

/** Builds KEYS and ARGV of evalWindow-N.lua (pure). */
export function buildEvalWindowArgs(
  keys: { hash: (pane: number) => string; set: (pane: number) => string; hll: (pane: number, field: number) => string; scratch: string },
  panes: number[],
  switchable: number[],
  mode: 'c' | 'v',
): { keys: string[]; args: Array<string | number> } {
  const keyList: string[] = [];
  for (const p of panes) keyList.push(keys.hash(p), keys.set(p));
  for (const f of switchable) for (const p of panes) keyList.push(keys.hll(p, f));
  keyList.push(keys.scratch);
  return { keys: keyList, args: [panes.length, mode, switchable.length, ...switchable] };
}

/** Parses evalWindow's mode 'c' reply. */
export function parseCountsReply(reply: unknown): { count: number; pruned: boolean; distinct: Map<number, number> } {
  if (!Array.isArray(reply) || reply.length < 2) throw new Error(`evalWindow: unexpected reply ${JSON.stringify(reply)}`);
  const distinct = new Map<number, number>();
  for (let i = 2; i + 1 < reply.length; i += 2) distinct.set(Number(reply[i]), Number(reply[i + 1]));
  return { count: Number(reply[0]), pruned: Number(reply[1]) === 1, distinct };
}

/** Parses evalWindow's mode 'v' reply into the group key and members per field. */
export function parseValuesReply(reply: unknown): { groupKey: GroupKey | null; members: Map<number, string[]> } {
  if (!Array.isArray(reply) || reply.length < 1) throw new Error(`evalWindow: unexpected reply ${JSON.stringify(reply)}`);
  const groupKey = typeof reply[0] === 'string' ? (JSON.parse(reply[0]) as GroupKey) : null;
  const members = new Map<number, string[]>();
  for (let i = 1; i < reply.length; i++) {
    const m = String(reply[i]);
    const colon = m.indexOf(':');
    const idx = Number(m.slice(0, colon));
    let list = members.get(idx);
    if (list === undefined) members.set(idx, (list = []));
    list.push(m.slice(colon + 1));
  }
  return { groupKey, members };
}
