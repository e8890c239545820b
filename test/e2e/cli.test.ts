import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../src/util/package-root';
import { CLI, envOf, runKade as kade, spawnKade } from '../helpers/kade-process';
import { deleteTopics, isolatedConfig, testKafka, waitFor } from '../helpers/kafka';

const DEMO = path.join(packageRoot(), 'demo', 'audit-demo.jsonl');


/** Follows `kade alerts` until `n` lines of output arrived, then stops it with SIGTERM. */
async function followAlerts(env: NodeJS.ProcessEnv, args: string[], until: (out: string) => boolean): Promise<{ out: string; code: number | null }> {
  const child = spawn(process.execPath, [CLI, 'alerts', ...args], { env: { ...env, KADE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  try {
    await waitFor('alerts on stdout', async () => until(out), 90_000);
  } finally {
    child.kill('SIGTERM');
  }
  return { out, code: await exited };
}

describe('the kade CLI (built, as a user runs it)', function () {
  this.timeout(180_000);

  it('kade rules lists the seed rule and its plan', async () => {
    const r = await kade(['rules']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /a337c3f8-e264-4eb4-9998-22669ca52791 {2}v2 {2}Kubernetes Potential Endpoint Permission Enumeration Attempt Detected/);
    assert.match(r.stdout, /Esql\.document_count = count\(\)/);
    assert.match(r.stdout, /prune panes at count >= 75/);
  });

  it('rejects bad configuration naming the key and the expected form', async () => {
    const bad = await kade(['rules'], { ...process.env, KADE_DETECTOR_LATENESS_MS: 'soon' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /detector\.latenessMs: must be an integer >= 0/);
    const role = await kade(['rules'], { ...process.env, KADE_ROLE: 'janitor' });
    assert.equal(role.code, 2);
    assert.match(role.stderr, /role: must be one of the possible values/);
    const dir = mkdtempSync(path.join(tmpdir(), 'kade-cfg-'));
    writeFileSync(path.join(dir, 'kade.json'), JSON.stringify({ detector: { latnessMs: 5 } }));
    const strict = await kade(['rules', '--config', path.join(dir, 'kade.json')]);
    assert.equal(strict.code, 2);
    assert.match(strict.stderr, /detector\.latnessMs/);
    writeFileSync(path.join(dir, 'ok.json'), JSON.stringify({ alerts: { suppressionMs: 120000 } }));
    const ok = await kade(['config', '--config', path.join(dir, 'ok.json')], { ...process.env, KADE_REDIS_URL: 'redis://kade:s3cret@127.0.0.1:6379' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /alerts\.suppressionMs = 120000\s+\(file /);
    assert.doesNotMatch(ok.stdout, /s3cret/, 'secrets are redacted');
  });

  it('topics, replay, run and alerts --json work together on the real broker (Avro and ECS JSON)', async () => {
    for (const format of ['avro', 'json'] as const) {
      const config = isolatedConfig(`cli-${format}`, { 'alerts.format': format, 'detector.latenessMs': 1_800_000, 'detector.idleTimeoutMs': 2000 });
      const env = envOf(config);
      const created = await kade(['topics'], env);
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stdout, new RegExp(`${config.topics.keyed.replace(/\./g, '\\.')}\\s+partitions=6\\s+created`));
      const check = await kade(['topics', '--check'], env);
      assert.equal(check.code, 0, check.stdout);
      assert.match(check.stdout, /ok/);
      const replayed = await kade(['replay', '--namespace', 'cluster-7', DEMO], env);
      assert.equal(replayed.code, 0, replayed.stderr);
      assert.match(replayed.stdout, /replayed 183 records/);
      const run = spawnKade(['run', '--role', 'all'], config, `cli-${format}`);
      try {
        const { out, code } = await followAlerts(env, ['--json', '--from-beginning'], (o) => o.includes('\n'));
        assert.equal(code, 0);
        const doc = JSON.parse(out.trim().split('\n')[0]) as Record<string, unknown>;
        if (format === 'avro') {
          assert.equal(doc.ruleId, 'a337c3f8-e264-4eb4-9998-22669ca52791');
          assert.deepEqual(doc.groupValues, ['system:admin', '203.0.113.66']);
          const esql = doc.esql as Record<string, unknown>;
          assert.equal(esql.document_count, 37);
          assert.deepEqual(esql.data_stream_namespace_values, ['cluster-7']);
        } else {
          assert.deepEqual((doc.event as Record<string, unknown>).kind, 'alert');
          assert.deepEqual(doc.rule, { id: 'a337c3f8-e264-4eb4-9998-22669ca52791', uuid: 'a337c3f8-e264-4eb4-9998-22669ca52791', name: 'Kubernetes Potential Endpoint Permission Enumeration Attempt Detected', version: '2' });
          assert.deepEqual((doc.user as Record<string, unknown>).name, 'system:admin');
          assert.deepEqual((doc.source as Record<string, unknown>).ip, '203.0.113.66');
          const threat = doc.threat as { tactic: { id: string[] }; technique: { id: string[] } };
          assert.deepEqual(threat.tactic.id, ['TA0007']);
          assert.deepEqual(threat.technique.id, ['T1613']);
          assert.equal((doc.Esql as Record<string, unknown>).kubernetes_audit_requestURI_count_distinct, 32);
        }
        const readable = await followAlerts(env, ['--from-beginning'], (o) => o.includes('window'));
        assert.match(readable.out, format === 'avro' ? /ALERT Kubernetes Potential Endpoint Permission Enumeration Attempt Detected/ : /"kind": "alert"/);
      } finally {
        assert.equal(await run.stop(), 0, `kade run exits 0 on SIGTERM (log ${run.logFile})`);
        await deleteTopics(testKafka(), config);
      }
    }
  });

  it('kade demo runs end to end and prints the synthetic attack', async () => {
    const r = await kade(['demo']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ALERT Kubernetes Potential Endpoint Permission Enumeration Attempt Detected/);
    assert.match(r.stdout, /kubernetes\.audit\.sourceIPs=203\.0\.113\.66/);
    assert.match(r.stdout, /1 alert\(s\), 5 suppressed/);
  });
});
