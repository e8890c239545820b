import net from 'node:net';
import type { Redis } from 'ioredis';
import { GROUP_KEY_CODE, decodeEntries } from '../../src/state/pane-delta';

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
export function redisDelta(a: RedisSnapshot, b: RedisSnapshot, own: Record<string, number> = {}): RedisDelta {
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
    totalReads: b.totalReads - a.totalReads - ownTotal,
    netInputBytes: b.netInputBytes - a.netInputBytes,
    usedMemory: b.usedMemory - a.usedMemory,
    cpuSeconds: b.cpuSeconds - a.cpuSeconds,
    calls,
    callsTotal,
    scriptCalls: (calls.evalsha ?? 0) + (calls.eval ?? 0),
  };
}

export interface PaneCensus {
  /** (group, pane) pairs: pane records `${prefix}:{<rule>:<gid>}:<pane base 36>`. */
  groupPanes: number;
  paneSets: number;
  paneHlls: number;
  suppression: number;
  otherKeys: number;
  /** Mean MEMORY USAGE of a pane hash + its set + its HLLs, over a sample. */
  sampledBytesPerGroupPane: number;
  sampled: number;
  /** Share of sampled pane hashes that are pruned (x = 1). */
  prunedShare: number;
  /** Mean MEMORY USAGE of a pane record, and mean bytes of its entries (records with entries). */
  sampledHashBytes: number;
  sampledSetBytes: number;
  /** Mean value entries per pane record and mean encoded entry length (bytes). */
  membersPerSet: number;
  memberBytes: number;
  /** OBJECT ENCODING of the sampled pane records (hashEncodings; setEncodings is empty since v2). */
  setEncodings: Record<string, number>;
  hashEncodings: Record<string, number>;
  /** Sampled entries per field index: mean entries and mean encoded bytes per record. */
  fieldShare: Record<string, { members: number; bytes: number }>;
  /** Commands the census sent (to subtract from later deltas if needed). */
  commands: number;
}

/** Counts the pane records (and other key kinds) of one prefix with SCAN; samples MEMORY USAGE. */
export async function paneCensus(redis: Redis, prefix: string, ruleKey: string, sampleSize = 400): Promise<PaneCensus> {
  // Pane records: `${prefix}:{<rule>:v<layout>:p<partition>}:<gid>:<pane start in base 36>`, their
  // HyperLogLogs with `:h<field>` after it; the partition's own keys have no group id
  // (src/state/keys.ts; a group id is 16 base64url characters).
  const paneRecord = /\}:[A-Za-z0-9_-]{16}:[0-9a-z]+$/;
  const paneHll = /\}:[A-Za-z0-9_-]{16}:[0-9a-z]+:h\d+$/;
  const sup = /\}:sup$/;
  const records: string[] = [];
  let paneHlls = 0;
  let suppression = 0;
  let otherKeys = 0;
  let commands = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:{${ruleKey}:*`, 'COUNT', 5000);
    commands++;
    cursor = next;
    for (const k of keys) {
      if (paneRecord.test(k)) records.push(k);
      else if (paneHll.test(k)) paneHlls++;
      else if (sup.test(k)) suppression++;
      else otherKeys++;
    }
  } while (cursor !== '0');
  // Deterministic sample spread over the key list.
  const step = Math.max(1, Math.floor(records.length / sampleSize));
  let bytes = 0;
  let recordBytes = 0;
  let entryBytesTotal = 0;
  let withEntries = 0;
  let members = 0;
  let memberBytes = 0;
  let sampled = 0;
  let pruned = 0;
  const encodings: Record<string, number> = {};
  const fields: Record<string, { members: number; bytes: number }> = {};
  for (let i = 0; i < records.length && sampled < sampleSize; i += step) {
    const k = records[i];
    const pipe = redis.pipeline();
    pipe.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    pipe.getBuffer(k);
    pipe.call('OBJECT', 'ENCODING', k);
    for (let f = 0; f < 8; f++) pipe.call('MEMORY', 'USAGE', `${k}:h${f}`, 'SAMPLES', '0');
    const r = ((await pipe.exec()) ?? []).map(([, v]) => v);
    commands += 11;
    const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
    recordBytes += num(r[0]);
    for (let j = 0; j < r.length; j++) if (j !== 1 && j !== 2) bytes += num(r[j]);
    if (typeof r[2] === 'string') encodings[r[2]] = (encodings[r[2]] ?? 0) + 1;
    const rec = r[1];
    if (Buffer.isBuffer(rec)) {
      const nl = rec.indexOf(10);
      if (/ x/.test(rec.toString('latin1', 0, nl))) pruned++;
      if (rec.length > nl + 1) {
        withEntries++;
        entryBytesTotal += rec.length - nl - 1;
        decodeEntries(rec, nl + 1, (code, value) => {
          const b = Buffer.byteLength(value) + (Buffer.byteLength(value) < 128 ? 2 : 3);
          const e = (fields[code === GROUP_KEY_CODE ? 'group key' : String(code)] ??= { members: 0, bytes: 0 });
          e.members++;
          e.bytes += b;
          if (code !== GROUP_KEY_CODE) {
            members++;
            memberBytes += b;
          }
        });
      }
    }
    sampled++;
  }
  const fieldShare: Record<string, { members: number; bytes: number }> = {};
  for (const [k, v] of Object.entries(fields)) fieldShare[k] = { members: v.members / Math.max(1, withEntries), bytes: v.bytes / Math.max(1, withEntries) };
  return {
    groupPanes: records.length,
    paneSets: 0,
    paneHlls,
    suppression,
    otherKeys,
    sampledBytesPerGroupPane: sampled > 0 ? bytes / sampled : Number.NaN,
    sampled,
    prunedShare: sampled > 0 ? pruned / sampled : Number.NaN,
    sampledHashBytes: sampled > 0 ? recordBytes / sampled : Number.NaN,
    sampledSetBytes: withEntries > 0 ? entryBytesTotal / withEntries : Number.NaN,
    membersPerSet: withEntries > 0 ? members / withEntries : Number.NaN,
    memberBytes: members > 0 ? memberBytes / members : Number.NaN,
    setEncodings: {},
    hashEncodings: encodings,
    fieldShare,
    commands,
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
