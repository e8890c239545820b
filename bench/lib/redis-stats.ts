import net from 'node:net';
import type { Redis } from 'ioredis';
import { GROUP_KEY_CODE, OFFSETS_CODE, decodeEntries } from '../../src/state/pane-delta';

export interface RedisSnapshot {
  totalCommands: number;
  totalReads: number;
  netInputBytes: number;
  usedMemory: number;
  cpuSeconds: number;
  /** Calls per command name (INFO commandstats; commands called from Lua scripts included). */
  calls: Record<string, number>;
}

function infoFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** One INFO call (Redis 7 takes several sections at once), so the snapshot costs one command. */
export async function redisSnapshot(redis: Redis): Promise<RedisSnapshot> {
  const text = (await redis.call('INFO', 'stats', 'commandstats', 'memory', 'cpu')) as string;
  const f = infoFields(text);
  const calls: Record<string, number> = {};
  for (const [k, v] of f) {
    if (!k.startsWith('cmdstat_')) continue;
    const m = /calls=(\d+)/.exec(v);
    if (m) calls[k.slice('cmdstat_'.length)] = Number(m[1]);
  }
  return {
    totalCommands: Number(f.get('total_commands_processed')),
    totalReads: Number(f.get('total_reads_processed')),
    netInputBytes: Number(f.get('total_net_input_bytes')),
    usedMemory: Number(f.get('used_memory')),
    cpuSeconds: Number(f.get('used_cpu_user')) + Number(f.get('used_cpu_sys')),
    calls,
  };
}

export interface RedisDelta {
  /** total_commands_processed delta (counts commands run inside Lua too), minus the bench's own. */
  totalCommands: number;
  /** total_reads_processed delta minus the bench's own: an upper bound of client round trips. */
  totalReads: number;
  netInputBytes: number;
  usedMemory: number;
  cpuSeconds: number;
  /** Per-command call deltas, without the bench's own INFO / HGETALL polls. */
  calls: Record<string, number>;
  /** Sum of per-command deltas (equals totalCommands up to the bench's own polls). */
  callsTotal: number;
  /** EVALSHA + EVAL calls (Lua script invocations sent by the client). */
  scriptCalls: number;
}

/**
 * Delta b - a. `own` lists commands the bench itself sent between the snapshots (the INFO of
 * snapshot b is counted here automatically), so they can be subtracted.
 */
/** ownReads: the bench's own round trips, when fewer than its commands (pipelines); default one per command. */
export function redisDelta(a: RedisSnapshot, b: RedisSnapshot, own: Record<string, number> = {}, ownReads?: number): RedisDelta {
  const ownAll: Record<string, number> = { ...own, info: (own.info ?? 0) + 1 };
  const calls: Record<string, number> = {};
  let callsTotal = 0;
  for (const [k, v] of Object.entries(b.calls)) {
    const d = v - (a.calls[k] ?? 0) - (ownAll[k] ?? 0);
    if (d > 0) {
      calls[k] = d;
      callsTotal += d;
    }
  }
  const ownTotal = Object.values(ownAll).reduce((s, x) => s + x, 0);
  return {
    totalCommands: b.totalCommands - a.totalCommands - ownTotal,
    totalReads: b.totalReads - a.totalReads - (ownReads === undefined ? ownTotal : ownReads + 1),
    netInputBytes: b.netInputBytes - a.netInputBytes,
    usedMemory: b.usedMemory - a.usedMemory,
    cpuSeconds: b.cpuSeconds - a.cpuSeconds,
    calls,
    callsTotal,
    scriptCalls: (calls.evalsha ?? 0) + (calls.eval ?? 0),
  };
}

/** Every key matching a pattern (SCAN); `calls` is the number of SCAN round trips. */
async function scanAll(redis: Redis, pattern: string): Promise<{ keys: string[]; calls: number }> {
  const keys: string[] = [];
  let calls = 0;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    calls++;
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return { keys, calls };
}

export interface PaneCensus {
  /** (group, pane) pairs: fields of the pane hashes `${prefix}:{<rule>:v<layout>:p<partition>}:q:<pane base 36>`. */
  groupPanes: number;
  /** Pane hashes (one per partition and live pane). */
  paneHashes: number;
  paneHlls: number;
  otherKeys: number;
  /** MEMORY USAGE of every pane hash and pane HyperLogLog over the pairs. */
  sampledBytesPerGroupPane: number;
  /** Pane records read for the entry statistics. */
  sampled: number;
  /** Share of sampled pane records that are pruned (x = 1). */
  prunedShare: number;
  /** Mean bytes of a sampled record's entries (records with entries). */
  sampledSetBytes: number;
  /** Mean value entries per pane record and mean encoded entry length (bytes). */
  membersPerSet: number;
  memberBytes: number;
  /** OBJECT ENCODING of the pane hashes. */
  hashEncodings: Record<string, number>;
  /** Sampled entries per field index: mean entries and mean encoded bytes per record. */
  fieldShare: Record<string, { members: number; bytes: number }>;
  /** Commands the census sent, by name (to subtract from Redis deltas), and its round trips. */
  own: Record<string, number>;
  reads: number;
}

/** Counts the pane hashes, their records (and other key kinds) of one prefix with SCAN; MEMORY USAGE of each. */
export async function paneCensus(redis: Redis, prefix: string, ruleKey: string, sampleSize = 400): Promise<PaneCensus> {
  // Pane hashes: `${prefix}:{<rule>:v<layout>:p<partition>}:q:<pane start in base 36>`; the
  // HyperLogLogs of a group's pane `...}:<gid>:<pane>:h<field>` (a group id is 16 base64url
  // characters); the partition's own keys otherwise (src/state/keys.ts).
  const paneHash = /\}:q:[0-9a-z]+$/;
  const paneHll = /\}:[A-Za-z0-9_-]{16}:[0-9a-z]+:h\d+$/;
  const hashes: string[] = [];
  const hlls: string[] = [];
  let otherKeys = 0;
  // Named as INFO commandstats names them, so redisDelta subtracts them.
  const own: Record<string, number> = { scan: 0, 'memory|usage': 0, 'object|encoding': 0, hvals: 0 };
  const scanned = await scanAll(redis, `${prefix}:{${ruleKey}:*`);
  own.scan += scanned.calls;
  let reads = scanned.calls;
  for (const k of scanned.keys) {
    if (paneHash.test(k)) hashes.push(k);
    else if (paneHll.test(k)) hlls.push(k);
    else otherKeys++;
  }
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  let bytes = 0;
  let pairs = 0;
  const encodings: Record<string, number> = {};
  const recordsByHash: Buffer[][] = [];
  for (const k of hashes) {
    const pipe = redis.pipeline();
    pipe.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    pipe.call('OBJECT', 'ENCODING', k);
    pipe.hvalsBuffer(k);
    const r = ((await pipe.exec()) ?? []).map(([, v]) => v);
    own['memory|usage']++;
    own['object|encoding']++;
    own.hvals++;
    reads++;
    bytes += num(r[0]);
    if (typeof r[1] === 'string') encodings[r[1]] = (encodings[r[1]] ?? 0) + 1;
    const recs = Array.isArray(r[2]) ? (r[2] as Buffer[]) : [];
    pairs += recs.length;
    recordsByHash.push(recs);
  }
  for (const k of hlls) {
    bytes += num(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
    own['memory|usage']++;
    reads++;
  }
  // Entry statistics over a deterministic sample spread over all records.
  const all = recordsByHash.flat();
  const step = Math.max(1, Math.floor(all.length / sampleSize));
  let entryBytesTotal = 0;
  let withEntries = 0;
  let members = 0;
  let memberBytes = 0;
  let sampled = 0;
  let pruned = 0;
  const fields: Record<string, { members: number; bytes: number }> = {};
  for (let i = 0; i < all.length && sampled < sampleSize; i += step) {
    const rec = all[i];
    const nl = rec.indexOf(10);
    if (/ x/.test(rec.toString('latin1', 0, nl))) pruned++;
    if (rec.length > nl + 1) {
      withEntries++;
      entryBytesTotal += rec.length - nl - 1;
      decodeEntries(rec, nl + 1, (code, value) => {
        const b = Buffer.byteLength(value) + (Buffer.byteLength(value) < 128 ? 2 : 3);
        const e = (fields[code === GROUP_KEY_CODE ? 'group key' : code === OFFSETS_CODE ? 'record offsets' : String(code)] ??= { members: 0, bytes: 0 });
        e.members++;
        e.bytes += b;
        if (code !== GROUP_KEY_CODE && code !== OFFSETS_CODE) {
          members++;
          memberBytes += b;
        }
      });
    }
    sampled++;
  }
  const fieldShare: Record<string, { members: number; bytes: number }> = {};
  for (const [k, v] of Object.entries(fields)) fieldShare[k] = { members: v.members / Math.max(1, withEntries), bytes: v.bytes / Math.max(1, withEntries) };
  return {
    groupPanes: pairs,
    paneHashes: hashes.length,
    paneHlls: hlls.length,
    otherKeys,
    sampledBytesPerGroupPane: pairs > 0 ? bytes / pairs : Number.NaN,
    sampled,
    prunedShare: sampled > 0 ? pruned / sampled : Number.NaN,
    sampledSetBytes: withEntries > 0 ? entryBytesTotal / withEntries : Number.NaN,
    membersPerSet: withEntries > 0 ? members / withEntries : Number.NaN,
    memberBytes: members > 0 ? memberBytes / members : Number.NaN,
    hashEncodings: encodings,
    fieldShare,
    own,
    reads,
  };
}

export interface PaneSample {
  /** Most (group, pane) pairs in Redis at one sample (pane hash fields). */
  peakPairs: number;
  /** used_memory at that sample minus the baseline. */
  usedMemoryAtPeak: number;
  /** The full census taken at the sample with the most pairs (see paneSampler). */
  census: PaneCensus | null;
  samples: number;
  /** Commands the sampler sent, by name (to subtract from the run's Redis deltas), and its round trips. */
  own: Record<string, number>;
  reads: number;
}

/**
 * Samples the pairs in Redis (SCAN of the prefix's pane hashes + HLEN) and used_memory every
 * `everyMs` while a detector runs: layout 4 deletes a pane's hash once no window reads it, so
 * the pairs live at the end of a run are not the ones a backlog had at its peak. A full census
 * (MEMORY USAGE, HVALS) is taken when the pairs exceed 1.2 x the last census's, so the census
 * describes a moment near the peak without reading everything every time.
 */
export function paneSampler(redis: Redis, prefix: string, ruleKey: string, baselineUsedMemory: number, everyMs = 250): { stop(): Promise<PaneSample> } {
  const own: Record<string, number> = {};
  const count = (cmd: string, n = 1): void => { own[cmd] = (own[cmd] ?? 0) + n; };
  const out: PaneSample = { peakPairs: 0, usedMemoryAtPeak: Number.NaN, census: null, samples: 0, own, reads: 0 };
  let censusPairs = 0;
  let stopped = false;
  const sample = async (): Promise<void> => {
    const { keys: hashes, calls } = await scanAll(redis, `${prefix}:{${ruleKey}:*:q:*`);
    count('scan', calls);
    out.reads += calls;
    const pipe = redis.pipeline();
    pipe.call('INFO', 'memory');
    for (const k of hashes) pipe.hlen(k);
    const r = ((await pipe.exec()) ?? []).map(([, v]) => v);
    out.reads++;
    count('info');
    count('hlen', hashes.length);
    const used = Number(infoFields(String(r[0])).get('used_memory'));
    const pairs = r.slice(1).reduce((sum: number, v) => sum + (typeof v === 'number' ? v : 0), 0);
    out.samples++;
    if (pairs > out.peakPairs) {
      out.peakPairs = pairs;
      out.usedMemoryAtPeak = used - baselineUsedMemory;
    }
    if (pairs > 1.2 * censusPairs) {
      const c = await paneCensus(redis, prefix, ruleKey);
      for (const [cmd, n] of Object.entries(c.own)) count(cmd, n);
      out.reads += c.reads;
      censusPairs = pairs;
      out.census = c;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await sample().catch(() => undefined);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return out;
    },
  };
}

/** Counts top-level RESP commands in a client -> server byte stream. */
class RespCommandCounter {
  commands = 0;
  private state: 'head' | 'len' | 'bulk' = 'head';
  private line = '';
  private argsLeft = 0;
  private bulkLeft = 0;

  feed(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      if (this.state === 'bulk') {
        const take = Math.min(this.bulkLeft, buf.length - i);
        this.bulkLeft -= take;
        i += take;
        if (this.bulkLeft === 0) {
          this.argsLeft--;
          if (this.argsLeft > 0) this.state = 'len';
          else {
            this.state = 'head';
            this.commands++;
          }
        }
        continue;
      }
      const nl = buf.indexOf(10, i);
      if (nl < 0) {
        this.line += buf.toString('latin1', i);
        return;
      }
      this.line += buf.toString('latin1', i, nl);
      i = nl + 1;
      const l = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      if (this.state === 'head') {
        if (l.startsWith('*')) {
          this.argsLeft = Number(l.slice(1));
          if (this.argsLeft > 0) this.state = 'len';
          else this.commands++;
        } else if (l.length > 0) {
          this.commands++; // inline command
        }
      } else {
        this.bulkLeft = Number(l.slice(1)) + 2;
        this.state = 'bulk';
      }
    }
  }
}

export interface ProxyCounts {
  connections: number;
  /** Request turns: client writes that start after the server answered (one per pipeline). */
  roundTrips: number;
  commands: number;
  clientBytes: number;
  serverBytes: number;
}

/**
 * A TCP proxy in front of Redis that counts round trips (request turns per connection) and
 * top-level commands: what a client sends, seen from outside the client.
 */
export async function startCountingProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<{ port: number; counts: ProxyCounts; close: () => Promise<void> }> {
  const counts: ProxyCounts = { connections: 0, roundTrips: 0, commands: 0, clientBytes: 0, serverBytes: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    counts.connections++;
    const upstream = net.connect({ host: upstreamHost, port: upstreamPort });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const parser = new RespCommandCounter();
    let clientTurn = true;
    client.on('data', (d: Buffer) => {
      if (clientTurn) {
        counts.roundTrips++;
        clientTurn = false;
      }
      counts.clientBytes += d.length;
      const before = parser.commands;
      parser.feed(d);
      counts.commands += parser.commands - before;
    });
    upstream.on('data', (d: Buffer) => {
      clientTurn = true;
      counts.serverBytes += d.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    counts,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
