import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import Module = require('node:module');
import {
  ProduceRequestArgs, crc32c, encodeProduceV3, fastProduceInstalled, groupMessagesPerPartition, kafkajsProduceV3,
} from '../../src/ingest/kafkajs-fast-produce';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
const Long = require('kafkajs/src/utils/long');
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C') as (b: Buffer) => number;

/** A kafkajs module compiled from its file, not the module cache (where kade's replacement sits). */
function kafkajsOwn<T>(request: string): T {
  const filename = require.resolve(request);
  const m = new Module(filename);
  m.filename = filename;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(filename);
  (m as unknown as { _compile(src: string, file: string): void })._compile(readFileSync(filename, 'utf8'), filename);
  return m.exports as T;
}

/**
 * Park–Miller: seeded, so a failure names the request that broke it. Its first outputs follow the
 * seed closely (a small seed gives a small first number), so the seed is spread and they are skipped.
 */
function rng(seed: number): () => number {
  let s = (seed * 2654435761) % 2147483647 || 1;
  const next = (): number => (s = (s * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 4; i++) next();
  return next;
}

const UNICODE = ['a', 'é', '€', '😀', 'ß', '\u0000', 'z', '漢'];
/** Lengths around the varint boundaries of a zigzag length (64, 8192, 1 << 20 bytes). */
const EDGE_LENGTHS = [0, 1, 63, 64, 65, 127, 128, 8191, 8192, 8193, 16383, 16384];
const LARGE_LENGTHS = [(1 << 20) - 1, 1 << 20, (1 << 20) + 3];
/** Random bytes to cut values from (generating each value byte by byte would be slow). */
const POOL = (() => {
  const r = rng(99);
  const b = Buffer.allocUnsafe((1 << 20) + 64);
  for (let i = 0; i < b.length; i++) b[i] = (r() * 256) | 0;
  return b;
})();

function gen(seed: number): ProduceRequestArgs {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const length = (): number => {
    const x = r();
    if (x < 0.0004) return pick(LARGE_LENGTHS);
    if (x < 0.03) return pick(EDGE_LENGTHS);
    if (x < 0.1) return Math.floor(r() * 20_000);
    return Math.floor(r() * 600);
  };
  const str = (n: number): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += r() < 0.9 ? String.fromCharCode(32 + Math.floor(r() * 90)) : pick(UNICODE);
    return s;
  };
  const bytes = (): unknown => {
    const x = r();
    if (x < 0.08) return null;
    if (x < 0.12) return undefined;
    if (x < 0.35) return str(length() >> 2);
    const n = length();
    const at = Math.floor(r() * (POOL.length - n));
    return Buffer.from(POOL.subarray(at, at + n));
  };
  const headers = (): unknown => {
    const x = r();
    if (x < 0.5) return undefined;
    if (x < 0.55) return {};
    const h: Record<string, unknown> = {};
    const n = 1 + Math.floor(r() * 4);
    for (let i = 0; i < n; i++) {
      const value = (): unknown => (r() < 0.5 ? str(Math.floor(r() * 40)) : Buffer.from(str(Math.floor(r() * 300))));
      h[str(Math.floor(r() * 12))] = r() < 0.2 ? Array.from({ length: Math.floor(r() * 3) }, value) : value();
    }
    return h;
  };
  const now = 1_700_000_000_000;
  const timestampMode = r();
  const timestamp = (): unknown => {
    if (timestampMode < 0.6) return undefined;
    const x = r();
    if (x < 0.2) return null;
    if (x < 0.25) return 0;
    // Deltas of every varlong length, and around its byte boundaries.
    const t = r() < 0.2
      ? now + pick([-1, 1, 63, 64, -64, -65, 8191, 8192, -8192, -8193, 2 ** 20, 2 ** 27, -(2 ** 27), 2 ** 34, 2 ** 41, 2 ** 48])
      : now + Math.floor((r() - 0.5) * 2 ** Math.floor(r() * 48));
    return x < 0.6 ? String(t) : t;
  };
  const topicData = [];
  const topics = Math.floor(r() * 4);
  for (let t = 0; t < topics; t++) {
    const partitions = [];
    const np = Math.floor(r() * 7);
    for (let p = 0; p < np; p++) {
      const nm = r() < 0.1 ? 0 : Math.floor(r() * (r() < 0.05 ? 200 : 15));
      const messages = [];
      for (let i = 0; i < nm; i++) {
        const m: Record<string, unknown> = { key: bytes(), value: bytes() };
        const h = headers();
        if (h !== undefined) m.headers = h;
        const ts = timestamp();
        if (ts !== undefined || r() < 0.5) m.timestamp = ts;
        messages.push(m);
      }
      partitions.push({ partition: r() < 0.3 ? String(p) : p, messages, firstSequence: Math.floor(r() * 2 ** 31) });
    }
    topicData.push({ topic: str(1 + Math.floor(r() * 30)), partitions });
  }
  return {
    acks: pick([-1, 0, 1]),
    timeout: pick([30000, 5000, 0]),
    transactionalId: pick([undefined, null, '', 'kade-router-raw-0', `tx-${str(10)}`]),
    producerId: pick([undefined, Long.fromValue('123456789012'), Long.fromInt(-1), 42, '9007199254740993']),
    producerEpoch: pick([undefined, 0, 7, 32767]),
    compression: pick([undefined, 0]),
    topicData,
  };
}

/** The body kafkajs' own Produce v3 request encodes for these arguments. */
async function kafkajsBytes(args: ProduceRequestArgs): Promise<Buffer> {
  return (await kafkajsProduceV3!(args).encode()).buffer;
}

/** Runs fn with Date.now() fixed (kafkajs stamps batches without timestamps with it). */
async function atFixedNow<T>(fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => 1_700_000_123_456;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

describe('kafkajs fast Produce encoding', () => {
  it('is installed: kafkajs 2.2.4 encodes Produce requests and groups messages with the replacements', () => {
    assert.equal(require('kafkajs/package.json').version, '2.2.4');
    assert.equal(fastProduceInstalled(), true);
    assert.notEqual(kafkajsProduceV3, null);
  });

  it('writes byte for byte what kafkajs writes, on 3,000 generated requests (null keys and values, headers, empty batches, large values, varint boundaries)', async () => {
    let records = 0;
    let bytes = 0;
    await atFixedNow(async () => {
      for (let seed = 1; seed <= 3000; seed++) {
        const args = gen(seed);
        const want = await kafkajsBytes(args);
        // The fast path itself, not the fallback: it must take every generated request.
        const got = encodeProduceV3(args, Long);
        if (!got.equals(want)) {
          let at = 0;
          while (at < want.length && got[at] === want[at]) at++;
          assert.fail(`seed ${seed}: ${got.length} bytes against kafkajs' ${want.length}, first difference at byte ${at}`);
        }
        // And through the module kafkajs loads (v3 request, what v4-v7 build on).
        const viaKafkajs = await require('kafkajs/src/protocol/requests/produce/v7/request')(args).encode();
        assert.ok(viaKafkajs.buffer.equals(want), `seed ${seed}: the installed v7 request differs`);
        for (const t of args.topicData) for (const p of t.partitions) records += p.messages.length;
        bytes += want.length;
      }
    });
    process.stdout.write(`      (${records} records, ${bytes} bytes)\n`);
    assert.ok(records > 50_000 && bytes > 20_000_000, `${records} records, ${bytes} bytes generated`);
  });

  it('hands what it does not take to kafkajs: same bytes, or kafkajs\' own error', async () => {
    const base = (messages: unknown[], extra: Partial<ProduceRequestArgs> = {}): ProduceRequestArgs => ({
      acks: -1, timeout: 30000, transactionalId: 'tx', producerId: Long.fromInt(5), producerEpoch: 1,
      topicData: [{ topic: 't', partitions: [{ partition: 0, messages: messages as never[], firstSequence: 0 }] }], ...extra,
    });
    const factory = require('kafkajs/src/protocol/requests/produce/v3/request');
    const cases: Array<[string, ProduceRequestArgs]> = [
      ['gzip', base([{ key: 'k', value: 'v' }], { compression: 1 })],
      ['NaN timestamp delta', base([{ value: 'v', timestamp: 'x' }])],
      ['fractional timestamp', base([{ value: 'v', timestamp: 1.5 }])],
      ['number value', base([{ value: 12 }])],
      ['Uint8Array value', base([{ value: new Uint8Array([1, 2]) }])],
      ['null header value', base([{ value: 'v', headers: { a: null } }])],
      ['null headers', base([{ value: 'v', headers: null }])],
      ['sparse header array', base([{ value: 'v', headers: { a: ['x', , 'y'] } }])], // eslint-disable-line no-sparse-arrays
      ['acks out of int16', base([{ value: 'v' }], { acks: 70000 })],
    ];
    await atFixedNow(async () => {
      for (const [name, args] of cases) {
        assert.throws(() => encodeProduceV3(args, Long), Error, `${name}: the fast path must refuse it`);
        const want = await kafkajsBytes(args).then((b) => ({ b }), (e: Error) => ({ e }));
        const got = await factory(args).encode().then((e: { buffer: Buffer }) => ({ b: e.buffer }), (e: Error) => ({ e }));
        if ('e' in want) assert.equal('e' in got && got.e.message, want.e.message, name);
        else assert.ok('b' in got && got.b.equals(want.b), name);
      }
    });
  });

  it('crc32c equals kafkajs\' CRC32C on 5,000 generated buffers and slices', () => {
    const r = rng(7);
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.allocUnsafe(i < 100 ? i : Math.floor(r() * 5000));
      for (let j = 0; j < b.length; j++) b[j] = (r() * 256) | 0;
      assert.equal(crc32c(b), kafkajsCrc32C(b), `length ${b.length}`);
      const start = Math.floor(r() * b.length);
      const end = start + Math.floor(r() * (b.length - start));
      assert.equal(crc32c(b, start, end), kafkajsCrc32C(b.subarray(start, end)));
    }
  });

  it('groups messages per partition as kafkajs does (same keys, order and arrays) on 2,000 generated sends', () => {
    const own = kafkajsOwn<typeof groupMessagesPerPartition>('kafkajs/src/producer/groupMessagesPerPartition');
    for (let seed = 1; seed <= 2000; seed++) {
      const r = rng(seed);
      const n = Math.floor(r() * 300);
      const partitions = 1 + Math.floor(r() * 12);
      const partitionMetadata = r() < 0.02 ? [] : Array.from({ length: partitions }, (_, p) => ({ partitionId: p }));
      const messages = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: String(r()) }));
      const choice = messages.map(() => Math.floor(r() * partitions));
      const partitioner = ({ message }: { message: unknown }): number => choice[messages.indexOf(message as never)];
      const want = own({ topic: 't', partitionMetadata, messages, partitioner });
      const got = groupMessagesPerPartition({ topic: 't', partitionMetadata, messages, partitioner });
      assert.deepEqual(Object.keys(got), Object.keys(want), `seed ${seed}`);
      for (const k of Object.keys(want)) {
        assert.equal(got[k].length, want[k].length);
        got[k].forEach((m, i) => assert.equal(m, want[k][i], `seed ${seed}: partition ${k}, message ${i}`));
      }
    }
  });
});
