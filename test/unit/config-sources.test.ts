import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../src/config/load';
import { schema } from '../../src/config/schema';
import { configSources, describeWithSources } from '../../src/config/sources';

/** key -> { value text, source } from the printed lines. */
function parse(text: string): Map<string, { value: string; source: string }> {
  const m = new Map<string, { value: string; source: string }>();
  for (const l of text.split('\n')) {
    const hit = /^(\S+) = (.*?) +\((.+)\)$/.exec(l);
    assert.ok(hit !== null, `line has the form "key = value   (source)": ${l}`);
    m.set(hit[1], { value: hit[2], source: hit[3] });
  }
  return m;
}

function leafKeys(): string[] {
  const out: string[] = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      if (typeof v === 'object' && v !== null && 'doc' in v) out.push(key);
      else walk(v as Record<string, unknown>, key);
    }
  };
  walk(schema as unknown as Record<string, unknown>, '');
  return out;
}

describe('kade config: effective values with their sources', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(tmpdir(), 'kade-config-sources-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints one line per schema key, all "default" without env, files or overrides', () => {
    const lines = parse(describeWithSources({ env: {} }));
    assert.deepEqual([...lines.keys()], leafKeys());
    for (const [key, { source }] of lines) assert.equal(source, 'default', key);
    assert.equal(lines.get('kafka.brokers')?.value, '["127.0.0.1:9092"]');
    assert.equal(lines.get('topics.keyedPartitions')?.value, '6');
    assert.equal(lines.get('topics.dlq')?.value, '""');
    assert.equal(lines.get('redis.url')?.value, '[redacted]', 'secrets are redacted even at their default');
  });

  it('aligns the source column', () => {
    const text = describeWithSources({ env: {} });
    const cols = new Set(text.split('\n').map((l) => l.indexOf('   (')));
    assert.equal(cols.size, 1, text);
  });

  it('applies convict\'s precedence: default < files in order < env < overrides', () => {
    const a = path.join(dir, 'a.json');
    const b = path.join(dir, 'b.json');
    const c = path.join(dir, 'c.json');
    writeFileSync(a, JSON.stringify({ topics: { raw: 'from-a', keyed: 'from-a' }, detector: { latenessMs: 1 } }));
    writeFileSync(b, JSON.stringify({ topics: { keyed: 'from-b' }, log: { level: 'warn' } }));
    writeFileSync(c, JSON.stringify({ alerts: { format: 'json' }, detector: { tickMs: 5 } }));
    const env = {
      KADE_CONFIG_FILE: c, // applied before the --config files
      KADE_DETECTOR_LATENESS_MS: '5000',
      KADE_KAFKA_BROKERS: 'k1:9092,k2:9092',
      KADE_REDIS_URL: 'redis://kade:hunter2@redis:6379',
      KADE_ROLE: 'router',
      UNRELATED: 'x',
    };
    const text = describeWithSources({ env, files: [a, b], overrides: { role: 'detector', 'http.port': 9464 } });
    const lines = parse(text);
    assert.deepEqual(lines.get('topics.raw'), { value: '"from-a"', source: `file ${a}` });
    assert.deepEqual(lines.get('topics.keyed'), { value: '"from-b"', source: `file ${b}` }, 'a later file wins');
    assert.deepEqual(lines.get('log.level'), { value: '"warn"', source: `file ${b}` });
    assert.deepEqual(lines.get('alerts.format'), { value: '"json"', source: `file ${c}` }, 'KADE_CONFIG_FILE names files too');
    assert.deepEqual(lines.get('detector.tickMs'), { value: '5', source: `file ${c}` });
    assert.deepEqual(lines.get('detector.latenessMs'), { value: '5000', source: 'env KADE_DETECTOR_LATENESS_MS' }, 'env beats files');
    assert.deepEqual(lines.get('kafka.brokers'), { value: '["k1:9092","k2:9092"]', source: 'env KADE_KAFKA_BROKERS' });
    assert.deepEqual(lines.get('redis.url'), { value: '[redacted]', source: 'env KADE_REDIS_URL' });
    assert.deepEqual(lines.get('role'), { value: '"detector"', source: 'override' }, 'overrides (flags) beat env');
    assert.deepEqual(lines.get('http.port'), { value: '9464', source: 'override' });
    assert.deepEqual(lines.get('topics.alerts'), { value: '"k8s.audit.alerts"', source: 'default' });
    assert.doesNotMatch(text, /hunter2/);
  });

  it('counts an env var set to the default value, or to "", as the source', () => {
    const lines = parse(describeWithSources({ env: { KADE_TOPIC_KEYED_PARTITIONS: '6', KADE_TOPIC_DLQ: '' } }));
    assert.deepEqual(lines.get('topics.keyedPartitions'), { value: '6', source: 'env KADE_TOPIC_KEYED_PARTITIONS' });
    assert.deepEqual(lines.get('topics.dlq'), { value: '""', source: 'env KADE_TOPIC_DLQ' });
  });

  it('attributes an override of a parent object to the keys it holds', () => {
    const kafka = {
      clientId: 'x', brokers: ['b:1'], sessionTimeoutMs: 30000, maxBytesPerPartition: 1048576,
      ssl: { enabled: false, caFile: '', certFile: '', keyFile: '', rejectUnauthorized: true },
      sasl: { mechanism: 'none', username: '', password: '' },
    };
    const s = configSources({ env: {}, overrides: { kafka } });
    assert.equal(s.find((x) => x.key === 'kafka.clientId')?.source, 'override');
    assert.equal(s.find((x) => x.key === 'topics.raw')?.source, 'default');
  });

  it('fails like loadConfig on an invalid configuration', () => {
    assert.throws(() => describeWithSources({ env: { KADE_TOPIC_KEYED_PARTITIONS: '0' } }), (e: unknown) => e instanceof ConfigError && /topics\.keyedPartitions/.test(e.message));
  });
});
