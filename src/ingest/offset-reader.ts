/**
 * Reads chosen records of one partition by offset, outside any consumer group.
 *
 * The detector calls this rarely (when an alert fires) to re-read the few records of a matching
 * window from the keyed topic. kafkajs has no public "fetch at offset" outside consumer groups, so
 * this drives its internals: the cluster factory the Kafka instance keeps under a private symbol,
 * the cluster's metadata and leader lookup, and the leader broker's Fetch and ListOffsets. kafkajs
 * is unmaintained and pinned (2.2.4), so those internals are frozen; createOffsetReader checks
 * they are there and refuses to build a reader on a kafkajs without them.
 *
 * What a raw Fetch hands back, and what this module does about it:
 * - read_committed does not drop aborted records at the broker: the response carries them with a
 *   list of aborted transactions, and the client filters (kade's exact filter, see
 *   kafkajs-read-committed.ts). Commit/abort markers arrive as records with `isControlRecord`.
 * - offsets are decimal strings (int64); records come in whole batches, so the first batch may
 *   start before the fetch offset, and a batch cut by maxBytes at the tail is dropped.
 * - a partition error throws (OFFSET_OUT_OF_RANGE below the log start or past the log end,
 *   NOT_LEADER_FOR_PARTITION, ...) rather than being returned.
 */
import { Kafka } from 'kafkajs';
import { DependencyError } from './errors';
import { filterAbortedMessages } from './kafkajs-read-committed';

export interface FetchedRecord { offset: number; key: Buffer | null; value: Buffer | null; }

export interface RecordsByOffset {
  /**
   * The records at these offsets of `partition` (read_committed). Offsets that do not exist (below
   * the log start, aborted, control records, beyond the end) are absent from the map; never throws
   * for them. Throws DependencyError('kafka', ...) when the broker cannot be reached after retries.
   */
  read(partition: number, offsets: number[]): Promise<Map<number, FetchedRecord>>;
  close(): Promise<void>;
}

/** A RecordsByOffset that counts its Fetch requests (for tests: reads share batches, not requests per offset). */
export interface OffsetReader extends RecordsByOffset {
  readonly fetches: number;
}

// --- the kafkajs 2.2.4 internals used (src/index.js, src/cluster/index.js, src/broker/index.js) ---

const CREATE_CLUSTER = 'private:Kafka:createCluster';
const READ_COMMITTED = 1; // kafkajs/src/protocol/isolationLevel
const EARLIEST = -2; // ListOffsets timestamp for the log start offset

interface RawRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  isControlRecord?: boolean;
  batchContext?: { firstOffset: string; lastOffsetDelta: number; producerId: string; inTransaction: boolean };
}
interface PartitionData {
  partition: number;
  abortedTransactions?: Array<{ producerId: string; firstOffset: string }>;
  messages: RawRecord[];
}
interface Broker {
  fetch(req: {
    isolationLevel: number; maxWaitTime: number; minBytes: number; maxBytes: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }> }>;
  }): Promise<{ responses: Array<{ topicName: string; partitions: PartitionData[] }> }>;
  listOffsets(req: {
    isolationLevel: number; topics: Array<{ topic: string; partitions: Array<{ partition: number; timestamp: number }> }>;
  }): Promise<{ responses: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> }>;
}
interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(q: { nodeId: string }): Promise<Broker>;
}
type CreateCluster = (opts: { metadataMaxAge: number; allowAutoTopicCreation: boolean; isolationLevel: number }) => Cluster;

const CLUSTER_METHODS = ['connect', 'disconnect', 'addTargetTopic', 'refreshMetadata', 'refreshMetadataIfNecessary',
  'findLeaderForPartitions', 'findBroker'] as const;
const BROKER_METHODS = ['fetch', 'listOffsets'] as const;

function kafkajsVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('kafkajs/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function missingInternals(what: string): Error {
  return new Error(`offset reader: kafkajs ${kafkajsVersion()} lacks ${what}; the reader drives kafkajs 2.2.4's internals`);
}

/** A fresh kafkajs Cluster of this Kafka instance (its brokers, TLS, SASL, retry and logger). */
function createCluster(kafka: Kafka): Cluster {
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const factory = sym === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[sym];
  if (typeof factory !== 'function') throw missingInternals(`the Kafka instance's ${CREATE_CLUSTER} symbol`);
  // Never create the topic by asking for its metadata: a reader may run before the topic exists.
  const cluster = (factory as CreateCluster)({ metadataMaxAge: 300_000, allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED });
  for (const m of CLUSTER_METHODS) {
    if (typeof (cluster as unknown as Record<string, unknown>)[m] !== 'function') throw missingInternals(`Cluster.${m}()`);
  }
  let brokerProto: Record<string, unknown> | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    brokerProto = (require('kafkajs/src/broker') as { prototype?: Record<string, unknown> }).prototype;
  } catch {
    brokerProto = undefined;
  }
  for (const m of BROKER_METHODS) {
    if (typeof brokerProto?.[m] !== 'function') throw missingInternals(`Broker.${m}()`);
  }
  return cluster;
}

// --- retries ---

/**
 * Bytes per fetch: enough for a whole router batch of the keyed topic (the broker returns the
 * first batch whole even when larger), not the megabytes around it. 1 MiB fetches made the
 * bench's live run spend ~400 ms reading back 670 records scattered over 6 minutes.
 */
const DEFAULT_MAX_BYTES = 64 * 1024;
/** Fetches in flight at once, each on a private cluster of its own (see createOffsetReader). */
const CONCURRENCY = 4;
/** An offset this close behind one being fetched waits for that fetch (likely the same batch). */
const SAME_BATCH_SPREAD = 100;

/** Attempts per request when Kafka answers with a retriable error, and the backoff between them. */
const ATTEMPTS = 5;
const BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errorType(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
}

/** A retriable error of our own (kafkajs' retry decisions read the same flag). */
function retriableError(message: string): Error {
  return Object.assign(new Error(message), { retriable: true });
}

// --- the reader ---

/**
 * A reader of records by offset on `topic`, on private kafkajs clusters (no connection yet:
 * the first read connects, so the reader may be created before the topic exists). Throws at once
 * when kafkajs lacks the internals it drives.
 */
export function createOffsetReader(kafka: Kafka, topic: string, opts: { maxBytes?: number; maxWaitMs?: number } = {}): OffsetReader {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  // The wanted records exist already: waiting only delays the empty answer at the end of the log.
  const maxWaitTime = opts.maxWaitMs ?? 5;
  let fetches = 0;
  let closed = false;
  // One private cluster per fetch in flight: kafkajs 2.2.4 Fetch requests sent concurrently on one
  // cluster leave connections behind that its disconnect() does not close (the process then
  // never exits). Lane 0 is built now, so a kafkajs without the internals fails at creation.
  const lanes: Lane[] = [makeLane(createCluster(kafka))];
  const lane = (i: number): Lane => {
    while (lanes.length <= i) lanes.push(makeLane(createCluster(kafka)));
    return lanes[i];
  };

  interface Lane {
    fetchAt(partition: number, offset: number): Promise<PartitionData | 'out-of-range'>;
    logStartOffset(partition: number): Promise<number>;
    disconnect(): Promise<void>;
  }

  /** Fetch and ListOffsets on one private cluster, one request at a time. */
  function makeLane(cluster: Cluster): Lane {
    /** The partition's leader, connecting and loading the topic's metadata first if needed. */
    async function leader(partition: number): Promise<Broker> {
      await cluster.connect();
      await cluster.addTargetTopic(topic);
      await cluster.refreshMetadataIfNecessary();
      const nodeIds = Object.keys(cluster.findLeaderForPartitions(topic, [partition]));
      if (nodeIds.length === 0) throw retriableError(`no leader known for ${topic}/${partition}`);
      return cluster.findBroker({ nodeId: nodeIds[0] });
    }

    /**
     * Runs one request, retrying retriable Kafka errors (stale leader, connection lost, topic not
     * in metadata yet) after a metadata refresh. When they persist, or kafkajs already gave up after
     * its own retries (connecting), throws DependencyError. Other errors pass through unchanged:
     * OFFSET_OUT_OF_RANGE for the caller, anything else is a bug or a misconfiguration.
     */
    async function withRetries<T>(what: string, run: () => Promise<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await run();
        } catch (err) {
          const exhausted = (err as Error).name === 'KafkaJSNumberOfRetriesExceeded';
          const retriable = (err as { retriable?: unknown }).retriable === true;
          if (!exhausted && !retriable) throw err;
          if (exhausted || attempt >= ATTEMPTS) {
            throw new DependencyError('kafka', `${what} failed after ${attempt} attempt(s): ${(err as Error).message}`, { cause: err });
          }
          await sleep(Math.min(BACKOFF_MS * 2 ** (attempt - 1), MAX_BACKOFF_MS));
          await cluster.refreshMetadata().catch(() => undefined); // the next attempt reports a lasting failure
        }
      }
    }

    /** One read_committed Fetch at `offset`; 'out-of-range' below the log start or past the log end. */
    async function fetchAt(partition: number, offset: number): Promise<PartitionData | 'out-of-range'> {
      return withRetries(`fetch of ${topic}/${partition} at offset ${offset}`, async () => {
        const broker = await leader(partition);
        fetches++;
        try {
          const { responses } = await broker.fetch({
            isolationLevel: READ_COMMITTED,
            maxWaitTime,
            minBytes: 1,
            maxBytes,
            topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes }] }],
          });
          const data = responses.find((r) => r.topicName === topic)?.partitions.find((p) => p.partition === partition);
          if (data === undefined || !Array.isArray(data.messages)) {
            throw missingInternals(`a Fetch response shaped as in 2.2.4 (no data for ${topic}/${partition})`);
          }
          return data;
        } catch (err) {
          if (errorType(err) === 'OFFSET_OUT_OF_RANGE') return 'out-of-range';
          throw err;
        }
      });
    }

    async function logStartOffset(partition: number): Promise<number> {
      return withRetries(`log start offset of ${topic}/${partition}`, async () => {
        const broker = await leader(partition);
        const { responses } = await broker.listOffsets({
          isolationLevel: READ_COMMITTED,
          topics: [{ topic, partitions: [{ partition, timestamp: EARLIEST }] }],
        });
        const found = responses.find((r) => r.topic === topic)?.partitions.find((p) => p.partition === partition);
        if (found === undefined) throw missingInternals(`a ListOffsets response shaped as in 2.2.4 (no data for ${topic}/${partition})`);
        return Number(found.offset);
      });
    }

    return { fetchAt, logStartOffset, disconnect: () => cluster.disconnect() };
  }

  async function read(partition: number, offsets: number[]): Promise<Map<number, FetchedRecord>> {
    if (closed) throw new Error(`offset reader of ${topic} is closed`);
    const out = new Map<number, FetchedRecord>();
    const want = new Set(offsets.filter((o) => Number.isSafeInteger(o) && o >= 0));
    // Offsets not yet covered by a fetch, ascending. Each wave fetches from up to CONCURRENCY of
    // them at once, skipping those close behind an offset it fetches (likely in the same batch):
    // a window's records lie scattered over minutes of a busy partition, one batch each.
    let pending = [...want].sort((a, b) => a - b);
    while (pending.length > 0) {
      const picks: number[] = [];
      for (const o of pending) {
        if (picks.length >= CONCURRENCY) break;
        if (picks.length === 0 || o - picks[picks.length - 1] > SAME_BATCH_SPREAD) picks.push(o);
      }
      const results = await Promise.all(picks.map((at, i) => lane(i).fetchAt(partition, at)));
      /** Offsets from here on do not exist (past the end, or beyond the last stable offset). */
      let stopAt = Infinity;
      /** [from, to] ranges read (or below the log start): what they lack does not exist. */
      const covered: Array<[number, number]> = [];
      let start: number | undefined; // the log start offset, asked once per wave when needed
      for (let i = 0; i < picks.length; i++) {
        const at = picks[i];
        const data = results[i];
        if (data === 'out-of-range') {
          start ??= await lanes[0].logStartOffset(partition);
          if (at < start) covered.push([0, start - 1]);
          else stopAt = Math.min(stopAt, at);
          continue;
        }
        if (data.messages.length === 0) {
          stopAt = Math.min(stopAt, at);
          continue;
        }
        // Records before the fetch offset (the first batch starts earlier) are not judged by this
        // response's aborted-transaction list: only those from `at` on count.
        for (const m of filterAbortedMessages(data as Parameters<typeof filterAbortedMessages>[0]) as RawRecord[]) {
          const offset = Number(m.offset);
          if (m.isControlRecord === true || offset < at || !want.has(offset) || out.has(offset)) continue;
          out.set(offset, { offset, key: copy(m.key), value: copy(m.value) });
        }
        const end = batchEnd(data.messages[data.messages.length - 1]);
        if (end < at) stopAt = Math.min(stopAt, at); // cannot happen on a sane broker; never loop on it
        else covered.push([at, end]);
      }
      pending = pending.filter((o) => o < stopAt && !out.has(o) && !covered.some(([from, to]) => o >= from && o <= to));
    }
    return out;
  }

  return {
    read,
    get fetches() { return fetches; },
    async close() {
      closed = true;
      await Promise.all(lanes.map((l) => l.disconnect()));
    },
  };
}

function copy(b: Buffer | null): Buffer | null {
  return b === null ? null : Buffer.from(b);
}

/** The last offset of the batch holding `m` (a batch can end in records removed by compaction). */
function batchEnd(m: RawRecord): number {
  const ctx = m.batchContext;
  return ctx === undefined ? Number(m.offset) : Number(ctx.firstOffset) + ctx.lastOffsetDelta;
}
