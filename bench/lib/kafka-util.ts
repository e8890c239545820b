import { Admin, Kafka, Message, Partitioners } from 'kafkajs';
import { sendChunked } from '../../src/ingest/send-chunked';
import { GeneratorOptions, generateAuditStream } from '../../test/helpers/audit-generator';
import { Worker, isAlive } from './workers';
import { log, sleep } from './util';

export async function createTopic(admin: Admin, topic: string, partitions: number, configEntries: Array<{ name: string; value: string }> = []): Promise<void> {
  const existing = new Set(await admin.listTopics());
  if (existing.has(topic)) return;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }] });
}

/** End offset (high watermark) of each partition. */
export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offs = await admin.fetchTopicOffsets(topic);
  return new Map(offs.map((o) => [o.partition, Number(o.high)]));
}

export function total(m: Map<number, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** Committed offset of each partition of a group (-1 = none yet). */
export async function committed(admin: Admin, groupId: string, topic: string): Promise<Map<number, number>> {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  const out = new Map<number, number>();
  for (const t of res) for (const p of t.partitions) out.set(p.partition, Number(p.offset));
  return out;
}

export function rawKey(ev: Record<string, unknown>): string {
  const e = ev as { user?: { username?: string }; sourceIPs?: string[] };
  return `${e.user?.username ?? ''}|${e.sourceIPs?.[0] ?? ''}`;
}

export interface LoadResult {
  topic: string;
  events: number;
  bytes: number;
  minEventTime: number;
  maxEventTime: number;
  seconds: number;
}

/**
 * Generates the stream and produces it once into a fresh raw topic (3 partitions), keyed by
 * `${username}|${firstIP}`, header kade.namespace = cluster, chunked sends under 512 KB.
 */
export async function loadRawTopic(kafka: Kafka, admin: Admin, topic: string, gen: GeneratorOptions, partitions = 3): Promise<LoadResult> {
  await createTopic(admin, topic, partitions);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const started = Date.now();
  let batch: Message[] = [];
  let inflight: Promise<void> = Promise.resolve();
  let events = 0;
  let bytes = 0;
  let minT = Number.POSITIVE_INFINITY;
  let maxT = Number.NEGATIVE_INFINITY;
  let nextLog = 100_000;
  try {
    for (const ev of generateAuditStream(gen)) {
      const value = JSON.stringify(ev.event);
      const t = Date.parse((ev.event as { requestReceivedTimestamp: string }).requestReceivedTimestamp);
      if (t < minT) minT = t;
      if (t > maxT) maxT = t;
      batch.push({ key: rawKey(ev.event), value, headers: { 'kade.namespace': ev.cluster } });
      bytes += value.length;
      events++;
      if (batch.length === 5000) {
        const b = batch;
        batch = [];
        await inflight; // generation of the next batch overlaps the send of this one
        inflight = sendChunked(producer, [{ topic, messages: b }], { acks: -1 });
      }
      if (events >= nextLog) {
        log(`  loaded ${events} events into ${topic}`);
        nextLog += 250_000;
      }
    }
    await inflight;
    if (batch.length > 0) await sendChunked(producer, [{ topic, messages: batch }], { acks: -1 });
  } finally {
    await producer.disconnect();
  }
  return { topic, events, bytes, minEventTime: minT, maxEventTime: maxT, seconds: (Date.now() - started) / 1000 };
}

export interface GroupTimes {
  /** Poll time at which the group was first seen Stable with members. */
  tStable: number;
  /** Poll time at which every partition's committed offset reached the end offset. */
  tLagZero: number;
  /** Poll time at which `extraDone` first returned true (= tLagZero without it). */
  tDone: number;
}

/**
 * Polls a consumer group until it is Stable, then until its committed offsets reach `ends`, then
 * until `extraDone` holds. Poll times bracket each instant within `pollMs`, the same way for the
 * no-op consumer and kade, so the bias cancels in ratios.
 */
export async function watchGroup(
  admin: Admin,
  groupId: string,
  topic: string,
  ends: Map<number, number>,
  workers: Worker[],
  opts: { pollMs?: number; timeoutMs?: number; extraDone?: () => Promise<boolean>; requireStable?: boolean } = {},
): Promise<GroupTimes> {
  const pollMs = opts.pollMs ?? 50;
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let tStable: number | null = null;
  let tLagZero: number | null = null;
  let consumed = 0;
  let nextReport = Date.now() + 30_000;
  for (;;) {
    if (Date.now() > nextReport) {
      nextReport += 30_000;
      log(`    ... ${groupId}: ${tStable === null ? 'not stable yet' : `${consumed}/${total(ends)} committed`}${tLagZero !== null ? ', lag 0, waiting for the done condition' : ''}`);
    }
    for (const w of workers) {
      if (!isAlive(w)) throw new Error(`${w.name} exited early (code ${w.child.exitCode}); log ${w.logFile}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for group ${groupId} on ${topic}`);
    const now = Date.now();
    if (tStable === null) {
      const d = await admin.describeGroups([groupId]);
      const g = d.groups[0];
      if (g !== undefined && g.state === 'Stable' && g.members.length > 0) tStable = now;
    }
    if (tStable !== null && tLagZero === null) {
      const c = await committed(admin, groupId, topic);
      let done = true;
      consumed = 0;
      for (const [p, end] of ends) {
        const at = c.get(p) ?? -1;
        if (at > 0) consumed += at;
        if (end > 0 && at < end) done = false;
      }
      if (done) tLagZero = now;
    }
    if (tLagZero !== null) {
      if (opts.extraDone === undefined || (await opts.extraDone())) {
        return { tStable: tStable as number, tLagZero, tDone: Date.now() };
      }
    }
    await sleep(pollMs);
  }
}

export async function deleteTopicsQuietly(admin: Admin, topics: string[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const mine = topics.filter((t) => existing.has(t));
  for (let i = 0; i < mine.length; i += 20) {
    try {
      await admin.deleteTopics({ topics: mine.slice(i, i + 20), timeout: 60_000 });
    } catch (err) {
      log(`could not delete topics ${mine.slice(i, i + 20).join(',')}: ${(err as Error).message}`);
    }
  }
}

export async function deleteGroupsQuietly(admin: Admin, groups: string[]): Promise<void> {
  if (groups.length === 0) return;
  try {
    await admin.deleteGroups(groups);
  } catch {
    // Groups may still be settling; they expire on their own.
  }
}
