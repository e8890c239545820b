import type { ChainableCommander, Redis } from 'ioredis';
import { CompiledPlan, WindowAggregates } from '../detect/compiled-plan';
import { DependencyError } from '../ingest/errors';
import { ClockState } from '../window/partition-clock';
import { CommitInput, DetectorState, PartitionRestore, PartitionSnapshot, WindowRef, WindowValues } from './detector-state';
import { panesOfWindow } from '../window/panes';
import { KeyBuilder } from './keys';
import {
  MAX_FIELD_CODE, PaneDelta, UpdatePaneParams, buildEvalWindowsArgs, buildUpdatePanesArgs, needsHll, parseCountsReply, parseUpdateReply, parseValuesReply, windowReplies,
} from './pane-delta';
import { registerScripts } from './scripts';

/** What updatePanes-N.lua needs to know of a rule (also used by bench/detect-micro.ts). */
export function updatePaneParams(plan: CompiledPlan, ttlSeconds: number): UpdatePaneParams {
  return {
    ttlSeconds, pruneAt: plan.pruneAt, exactThreshold: plan.plan.distinctExactThreshold, switchable: plan.switchable,
    keepOffsets: plan.valuesFromTopic,
  };
}

/** Deltas per updatePanes call, windows per evalWindows call: bounds the time one call blocks Redis. */
export const DELTAS_PER_CALL = 200;
export const WINDOWS_PER_CALL = 100;

/**
 * The detector's state on Redis (or Redis Cluster). Each method is one pipelined round trip (two
 * when a replay overlaps a batch already applied). Every key of a partition shares one hash tag,
 * so one Lua call carries the pane updates (or window evaluations) of many groups: the cost per
 * batch grows with its records, not with the number of Lua calls.
 */
export class RedisState implements DetectorState {
  private readonly update: UpdatePaneParams;
  private readonly switchable: number[];
  private readonly connection: { closes: number };
  private readonly distinct: number[];

  constructor(
    private readonly redis: Redis,
    private readonly keys: KeyBuilder,
    private readonly plan: CompiledPlan,
    private readonly ttlSeconds: number,
    private readonly observe: (op: string, seconds: number) => void = () => undefined,
  ) {
    registerScripts(redis);
    this.connection = connectionCounter(redis);
    if (plan.fields.length > MAX_FIELD_CODE + 1) throw new Error(`rule ${plan.id}: at most ${MAX_FIELD_CODE + 1} tracked fields fit a pane record`);
    this.switchable = plan.switchable;
    this.distinct = plan.fields.filter((f) => f.needDistinct).map((f) => f.index);
    this.update = updatePaneParams(plan, ttlSeconds);
  }

  /**
   * Applies a batch's deltas and marks the groups active in their panes; durable on return.
   * counts[i]: the count of deltas[i]'s pane record once applied (offset-guarded: exact).
   */
  async applyBatch(
    partition: number, deltas: PaneDelta[], streamTime: number | null,
    newPanes: Map<number, number> = new Map(),
  ): Promise<{ replayed: number; counts: number[] }> {
    const pipe = this.redis.pipeline();
    const calls = this.queueUpdates(pipe, partition, deltas, false);
    if (newPanes.size > 0) {
      // The first record of a pane wins: a replay after a crash sees the same first offset again.
      const pfo = this.keys.paneFirstOffsets(partition);
      for (const [pane, offset] of newPanes) pipe.hsetnx(pfo, String(pane), String(offset));
      pipe.expire(pfo, this.ttlSeconds);
    }
    // The groups of each pane are the fields of its hash: only the pane list is kept.
    const panes = new Set<number>();
    for (const d of deltas) panes.add(d.pane);
    for (const pane of panes) pipe.zadd(this.keys.activePanes(partition), pane, String(pane));
    if (panes.size > 0) pipe.expire(this.keys.activePanes(partition), this.ttlSeconds);
    if (streamTime !== null) {
      // Stream time is safe to save early: it only reflects records made durable in this pipeline.
      pipe.hset(this.keys.checkpoint(partition), 'streamTime', String(streamTime));
      pipe.expire(this.keys.checkpoint(partition), this.ttlSeconds);
    }
    const replies = await this.exec(pipe, 'apply_batch');
    const again: Array<{ delta: PaneDelta; partial: boolean; at: number }> = [];
    const counts: number[] = new Array(deltas.length);
    let replayed = 0;
    calls.forEach((chunk, c) => {
      parseUpdateReply(replies[c], chunk.length).forEach(([status, count], i) => {
        const at = c * DELTAS_PER_CALL + i;
        if (status === -1 || status === -2) again.push({ delta: chunk[i], partial: status === -1, at });
        else {
          counts[at] = count;
          if (status === 0) replayed++;
        }
      });
    });
    if (again.length > 0) {
      // A replay after a crash overlapped a batch already applied (-1), or a pane switched to a
      // HyperLogLog (-2): send those again with the exact offsets and the HyperLogLog keys.
      const retry = this.redis.pipeline();
      const retried = this.queueUpdates(retry, partition, again.map((a) => a.delta), true);
      const retryReplies = await this.exec(retry, 'apply_batch_retry');
      retried.forEach((chunk, c) => {
        parseUpdateReply(retryReplies[c], chunk.length).forEach(([status, count], i) => {
          if (status < 0) throw new Error(`updatePanes: status ${status} on a retry with offsets and HyperLogLog keys`);
          counts[again[c * DELTAS_PER_CALL + i].at] = count;
        });
      });
      replayed += again.filter((a) => a.partial).length;
    }
    return { replayed, counts };
  }

  /** Queues the deltas in calls of at most DELTAS_PER_CALL; returns each call's deltas. */
  private queueUpdates(pipe: ChainableCommander, partition: number, deltas: PaneDelta[], retry: boolean): PaneDelta[][] {
    const calls: PaneDelta[][] = [];
    const keyOf = {
      hash: (pane: number) => this.keys.paneHash(partition, pane),
      hll: (d: PaneDelta, f: number) => this.keys.paneHll(partition, d.gid, d.pane, f),
    };
    for (let i = 0; i < deltas.length; i += DELTAS_PER_CALL) {
      const chunk = deltas.slice(i, i + DELTAS_PER_CALL);
      const { keys, args } = buildUpdatePanesArgs(keyOf, chunk, this.update, retry);
      pipe.kadeUpdatePanesV4(keys.length, ...keys, ...args);
      calls.push(chunk);
    }
    return calls;
  }

  async loadPartition(partition: number): Promise<PartitionSnapshot> {
    const pipe = this.redis.pipeline();
    pipe.hgetall(this.keys.checkpoint(partition));
    pipe.zrange(this.keys.activePanes(partition), 0, -1);
    pipe.zrange(this.keys.recentMatches(partition), 0, -1, 'WITHSCORES');
    pipe.zrange(this.keys.anchors(partition), 0, -1, 'WITHSCORES');
    pipe.hgetall(this.keys.paneFirstOffsets(partition));
    const [ckpt, panes, recent, anchors, pfo] = await this.exec(pipe, 'load_partition') as
      [Record<string, string>, string[], string[], string[], Record<string, string>];
    const num = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number(v));
    return {
      exists: Object.keys(ckpt).length > 0,
      clock: { streamTime: num(ckpt.streamTime), lastClosed: num(ckpt.lastClosed), idleWatermark: num(ckpt.idleWatermark) },
      panes: panes.map(Number),
      paneFirstOffsets: new Map(Object.entries(pfo).map(([pane, offset]) => [Number(pane), Number(offset)])),
      recent: scoreMap(recent),
      anchors: scoreMap(anchors),
      rebuildUntil: num(ckpt.rebuildUntil),
    };
  }

  async restorePartition(partition: number, state: PartitionRestore): Promise<void> {
    const pipe = this.redis.pipeline();
    const ttl = this.ttlSeconds;
    const ckpt = this.keys.checkpoint(partition);
    pipe.hset(ckpt, { ...clockFields(state.clock), rebuildUntil: state.rebuildUntil === null ? '' : String(state.rebuildUntil) });
    pipe.expire(ckpt, ttl);
    const panesKey = this.keys.activePanes(partition);
    for (const q of state.panes) pipe.zadd(panesKey, q, String(q));
    if (state.panes.length > 0) pipe.expire(panesKey, ttl);
    const pfo = this.keys.paneFirstOffsets(partition);
    for (const [q, o] of state.paneFirstOffsets) pipe.hset(pfo, String(q), String(o));
    if (state.paneFirstOffsets.size > 0) pipe.expire(pfo, ttl);
    for (const [key, scores] of [[this.keys.recentMatches(partition), state.recent], [this.keys.anchors(partition), state.anchors]] as const) {
      for (const [gid, end] of scores) pipe.zadd(key, 'GT', end, gid);
      if (scores.size > 0) pipe.expire(key, ttl);
    }
    await this.exec(pipe, 'restore_partition');
  }

  /** Groups active in each of the given panes of a partition. */
  async activeGroups(partition: number, panes: number[]): Promise<Map<number, string[]>> {
    const pipe = this.redis.pipeline();
    for (const p of panes) pipe.hkeys(this.keys.paneHash(partition, p));
    const replies = await this.exec(pipe, 'active_groups') as string[][];
    return new Map(panes.map((p, i) => [p, replies[i]]));
  }

  async evalCounts(partition: number, windows: WindowRef[]): Promise<WindowAggregates[]> {
    return (await this.evalWindows(partition, windows, 'c')).map(parseCountsReply);
  }

  async evalValues(partition: number, windows: WindowRef[]): Promise<WindowValues[]> {
    return (await this.evalWindows(partition, windows, 'v')).map(parseValuesReply);
  }

  /**
   * One pipeline of evalWindows calls of at most WINDOWS_PER_CALL windows; one reply per window.
   * Windows with a pane switched to a HyperLogLog are evaluated again with its keys.
   */
  private async evalWindows(partition: number, windows: WindowRef[], mode: 'c' | 'v'): Promise<unknown[]> {
    const out = await this.evalWindowsOnce(partition, windows, mode, false);
    if (mode === 'v') return out;
    const again: number[] = [];
    out.forEach((r, i) => { if (needsHll(r)) again.push(i); });
    if (again.length > 0) {
      const retried = await this.evalWindowsOnce(partition, again.map((i) => windows[i]), mode, true);
      again.forEach((i, k) => { out[i] = retried[k]; });
    }
    return out;
  }

  private async evalWindowsOnce(partition: number, windows: WindowRef[], mode: 'c' | 'v', withHll: boolean): Promise<unknown[]> {
    if (windows.length === 0) return [];
    const pipe = this.redis.pipeline();
    const sizes: number[] = [];
    for (let i = 0; i < windows.length; i += WINDOWS_PER_CALL) {
      const chunk = windows.slice(i, i + WINDOWS_PER_CALL);
      const { keys, args } = buildEvalWindowsArgs({
        hash: (q) => this.keys.paneHash(partition, q),
        hll: (w, q, f) => this.keys.paneHll(partition, chunk[w].gid, q, f),
        scratch: this.keys.scratch(partition),
      }, chunk.map((w) => ({ gid: w.gid, panes: panesOfWindow(w.end, this.plan.plan.window) })), this.switchable, this.distinct, mode, withHll);
      // Pane records are binary: values mode reads them as Buffers.
      if (mode === 'v') pipe.kadeEvalWindowsV4Buffer(keys.length, ...keys, ...args);
      else pipe.kadeEvalWindowsV4(keys.length, ...keys, ...args);
      sizes.push(chunk.length);
    }
    const replies = await this.exec(pipe, mode === 'v' ? 'eval_values' : withHll ? 'eval_counts_hll' : 'eval_counts');
    return replies.flatMap((r, i) => windowReplies(r, sizes[i]));
  }

  /**
   * Records the outcome of closed windows once their alerts are acked: suppression anchors,
   * recent matches, the partition checkpoint, and retires panes no window reads any more.
   */
  async commit(partition: number, input: CommitInput): Promise<void> {
    const pipe = this.redis.pipeline();
    const ttl = this.ttlSeconds;
    const anchorsKey = this.keys.anchors(partition);
    for (const a of input.alerted) pipe.zadd(anchorsKey, 'GT', a.end, a.gid);
    if (input.alerted.length > 0) pipe.expire(anchorsKey, ttl);
    if (input.anchorsBefore !== undefined && input.anchorsBefore !== null) pipe.zremrangebyscore(anchorsKey, '-inf', `(${input.anchorsBefore}`);
    const recentKey = this.keys.recentMatches(partition);
    for (const m of input.matched) pipe.zadd(recentKey, 'GT', m.end, m.gid);
    if (input.matched.length > 0) pipe.expire(recentKey, ttl);
    const { sizeMs, hopMs } = this.plan.plan.window;
    if (input.clock.lastClosed !== null) {
      pipe.zremrangebyscore(recentKey, '-inf', `(${input.clock.lastClosed - sizeMs - hopMs}`);
    }
    const ckpt = this.keys.checkpoint(partition);
    pipe.hset(ckpt, { ...clockFields(input.clock), rebuildUntil: input.rebuildUntil === undefined || input.rebuildUntil === null ? '' : String(input.rebuildUntil) });
    pipe.expire(ckpt, ttl);
    if (input.retiredPanes.length > 0) {
      const names = input.retiredPanes.map(String);
      pipe.zrem(this.keys.activePanes(partition), ...names);
      pipe.hdel(this.keys.paneFirstOffsets(partition), ...names);
      // No window reads these panes any more: their records go now, not at their TTL (after the
      // checkpoint above, so a failed pipeline never leaves a window open without its panes).
      // UNLINK frees a large hash off Redis' main thread.
      pipe.unlink(...input.retiredPanes.map((p) => this.keys.paneHash(partition, p)));
    }
    await this.exec(pipe, 'commit');
  }

  generation(): number {
    return this.connection.closes;
  }

  private async exec(pipe: ChainableCommander, op = 'other'): Promise<unknown[]> {
    const started = process.hrtime.bigint();
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await pipe.exec();
    } catch (cause) {
      throw new DependencyError('redis', `redis pipeline failed: ${(cause as Error).message}`, { cause });
    }
    this.observe(op, Number(process.hrtime.bigint() - started) / 1e9);
    if (replies === null) throw new DependencyError('redis', 'redis pipeline was discarded');
    return replies.map(([err, result]) => {
      if (err !== null) throw classifyRedisError(err);
      return result;
    });
  }
}

const counters = new WeakMap<Redis, { closes: number }>();

/** One 'close' listener per client, shared by every RedisState on it. */
function connectionCounter(redis: Redis): { closes: number } {
  let c = counters.get(redis);
  if (c === undefined) {
    const counter = { closes: 0 };
    redis.on('close', () => { counter.closes++; });
    counters.set(redis, (c = counter));
  }
  return c;
}

function scoreMap(withScores: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i + 1 < withScores.length; i += 2) out.set(withScores[i], Number(withScores[i + 1]));
  return out;
}

function clockFields(clock: ClockState): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(clock)) fields[k] = v === null ? '' : String(v);
  return fields;
}

/** Redis error replies whose code means "try again later"; any other reply error is a bug. */
const TRANSIENT_CODES = new Set(['LOADING', 'BUSY', 'READONLY', 'CLUSTERDOWN', 'TRYAGAIN', 'MASTERDOWN', 'MOVED', 'ASK']);

function classifyRedisError(err: Error): Error {
  if (err.name !== 'ReplyError') return new DependencyError('redis', err.message, { cause: err });
  const code = err.message.split(' ', 1)[0];
  return TRANSIENT_CODES.has(code) ? new DependencyError('redis', err.message, { cause: err }) : err;
}
