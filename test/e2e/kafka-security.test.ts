import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { KadeConfig, loadConfig } from '../../src/config/load';
import { createKafka, createProducer } from '../../src/ingest/kafka';
import { ensureTopics } from '../../src/ingest/topics';
import { connectionProblem } from '../../src/ops/connection-errors';
import { runDoctor } from '../../src/ops/doctor';
import { createLogger } from '../../src/ops/logger';
import { packageRoot } from '../../src/util/package-root';
import { CLI, envOf, runKade as kade, spawnKade } from '../helpers/kade-process';
import { KafkaInstance, startKafkaInstance } from '../helpers/kafka-instance';
import { isolatedConfig, readTopic, uniqueName, waitFor } from '../helpers/kafka';
import { TestPki, makeTestPki } from '../helpers/test-pki';

const DEMO = path.join(packageRoot(), 'demo', 'audit-demo.jsonl');
const PASSWORD = 'kade-s3cret-pw';
const log = createLogger('silent');


/** Doctor's output lines for a config. */
async function doctor(config: KadeConfig): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runDoctor(config, (l) => lines.push(l));
  return { code, lines };
}

/**
 * kade against a private Kafka 3.9.1 broker with a SASL_PLAINTEXT listener (SCRAM-SHA-512,
 * SCRAM-SHA-256, PLAIN; SCRAM users created at format time) and an SSL listener that requires
 * client certificates, every client built from kade's own configuration (createKafka /
 * kafkaSecurityOptions), as in production.
 */
describe('Kafka SASL and TLS (private broker with SASL_PLAINTEXT and SSL listeners)', function () {
  this.timeout(240_000);
  let pki: TestPki;
  let broker: KafkaInstance;
  let plain: Kafka;

  before(async () => {
    pki = makeTestPki();
    broker = await startKafkaInstance({
      sasl: { mechanisms: ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'], users: { kade: PASSWORD } },
      ssl: { keystoreFile: pki.serverP12File, keystorePassword: pki.p12Password, truststoreFile: pki.caFile, clientAuth: 'required' },
    });
    // The PLAINTEXT listener, for setting up and checking behind kade's back.
    plain = new Kafka({ clientId: 'kade-test', brokers: broker.brokers, logLevel: logLevel.NOTHING });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
  });

  /** An isolated config on the SASL listener; env as a user would give it. */
  function saslConfig(tag: string, env: NodeJS.ProcessEnv): KadeConfig {
    const base = isolatedConfig(tag);
    return loadConfig({ env: { ...env, KADE_KAFKA_BROKERS: broker.saslBrokers.join(',') }, overrides: { topics: base.topics, router: base.router, detector: base.detector, redis: base.redis, 'log.level': 'silent' } }).config;
  }

  async function roundTrip(kafka: Kafka, tag: string): Promise<string[]> {
    const topic = uniqueName(tag);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    const producer = createProducer(kafka);
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ value: `hello ${tag} 1` }, { value: `hello ${tag} 2` }] });
    } finally {
      await producer.disconnect();
    }
    return (await readTopic(kafka, topic, 2, 60_000)).map((m) => String(m.value));
  }

  for (const mechanism of ['scram-sha-512', 'scram-sha-256', 'plain'] as const) {
    it(`produces and consumes through the SASL listener with ${mechanism}`, async () => {
      const config = saslConfig(`sasl-${mechanism}`, { KADE_KAFKA_SASL_MECHANISM: mechanism, KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: PASSWORD });
      assert.deepEqual(await roundTrip(createKafka(config, log, 'test'), mechanism), [`hello ${mechanism} 1`, `hello ${mechanism} 2`]);
    });
  }

  it('without SASL settings, the SASL listener does not let kade in', async () => {
    const config = saslConfig('sasl-none', {});
    const { code, lines } = await doctor(config);
    assert.equal(code, 1, lines.join('\n'));
    assert.match(lines.find((l) => /Kafka/.test(l)) ?? '', /^PROBLEM +Kafka: cannot reach .*may expect SASL or TLS/);
  });

  it('with a wrong password: an authentication error, named as such by doctor and the CLI, never showing the password', async () => {
    const wrong = 'not-the-password';
    const config = saslConfig('sasl-wrong', { KADE_KAFKA_SASL_MECHANISM: 'scram-sha-512', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: wrong });
    const admin = createKafka(config, log, 'test').admin();
    const err = await admin.connect().then(() => null, (e: unknown) => e);
    await admin.disconnect().catch(() => undefined);
    assert.ok(err instanceof Error, 'connect is refused');
    assert.equal(err.name, 'KafkaJSSASLAuthenticationError');
    assert.match(err.message, /SCRAM-SHA-512|SHA512/);
    assert.deepEqual(connectionProblem(err) === null ? null : [connectionProblem(err)?.service, connectionProblem(err)?.kind], ['Kafka', 'authentication']);

    const d = await doctor(config);
    assert.equal(d.code, 1, d.lines.join('\n'));
    assert.match(d.lines.find((l) => /Kafka/.test(l)) ?? '', /^PROBLEM +Kafka: authentication failed at 127\.0\.0\.1:\d+ as user "kade" with SCRAM-SHA-512 .*Fix: check kafka\.sasl\.username and kafka\.sasl\.password/);
    assert.ok(d.lines.some((l) => /^SKIP +topics: not checked because kade cannot connect to Kafka/.test(l)), d.lines.join('\n'));

    const env = envOf(config);
    const check = await kade(['topics', '--check'], env);
    assert.equal(check.code, 1, check.stderr);
    assert.match(check.stderr, /^kade: Kafka authentication failed \(SASL SCRAM SHA512 authentication failed.*\)\. Fix: check kafka\.sasl\.username/m);
    assert.doesNotMatch(check.stderr, /\n\s+at /, 'one line, no stack trace');
    const cliDoctor = await kade(['doctor'], env);
    assert.equal(cliDoctor.code, 1);
    assert.match(cliDoctor.stdout, /PROBLEM +Kafka: authentication failed/);
    for (const out of [check.stdout, check.stderr, cliDoctor.stdout, cliDoctor.stderr, d.lines.join('\n')]) assert.ok(!out.includes(wrong), 'the password is never printed');
  });

  it('kade topics, replay, run and alerts work end to end through SCRAM-SHA-512', async () => {
    const config = saslConfig('sasl-e2e', { KADE_KAFKA_SASL_MECHANISM: 'scram-sha-512', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: PASSWORD });
    const run = { ...config, detector: { ...config.detector, latenessMs: 1_800_000, idleTimeoutMs: 2000 } };
    const env = envOf(run);
    const created = await kade(['topics'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, new RegExp(`${config.topics.keyed.replace(/\./g, '\\.')}\\s+partitions=6\\s+created`));
    const replayed = await kade(['replay', '--namespace', 'cluster-sasl', DEMO], env);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /replayed 183 records/);
    const kadeRun = spawnKade(['run', '--role', 'all'], run, 'sasl-run');
    const alerts = spawn(process.execPath, [CLI, 'alerts', '--json', '--from-beginning'], { env: { ...env, KADE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    alerts.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor(`an alert on stdout (kade run log ${kadeRun.logFile})`, async () => out.includes('\n'), 120_000, 200);
      const doc = JSON.parse(out.trim().split('\n')[0]) as { groupValues: string[]; esql: Record<string, unknown> };
      assert.deepEqual(doc.groupValues, ['system:admin', '203.0.113.66']);
      assert.equal(doc.esql.document_count, 37);
      assert.deepEqual(doc.esql.data_stream_namespace_values, ['cluster-sasl']);
    } finally {
      alerts.kill('SIGTERM');
      assert.equal(await kadeRun.stop(), 0, `kade run exits 0 on SIGTERM (log ${kadeRun.logFile})`);
    }
    const runLog = readFileSync(kadeRun.logFile, 'utf8');
    assert.match(runLog, /"kafkaSasl":"scram-sha-512"/, 'the startup line says how kade connects');
    assert.ok(!runLog.includes(PASSWORD), 'the password is not in the logs');
    // The records went through the SASL listener's broker: visible on the PLAINTEXT one too.
    const keyed = await readTopic(plain, config.topics.keyed, 1, 30_000);
    assert.ok(keyed.length >= 1);
  });

  describe('TLS listener (client certificate required)', () => {
    const sslConfig = (tag: string, env: NodeJS.ProcessEnv): KadeConfig => {
      const base = isolatedConfig(tag);
      return loadConfig({ env: { KADE_KAFKA_BROKERS: broker.sslBrokers.join(','), KADE_KAFKA_SSL_ENABLED: 'true', ...env }, overrides: { topics: base.topics, 'log.level': 'silent' } }).config;
    };

    it('produces and consumes with the CA and a client certificate', async () => {
      const config = sslConfig('ssl-ok', { KADE_KAFKA_SSL_CA_FILE: pki.caFile, KADE_KAFKA_SSL_CERT_FILE: pki.clientCertFile, KADE_KAFKA_SSL_KEY_FILE: pki.clientKeyFile });
      assert.deepEqual(await roundTrip(createKafka(config, log, 'test'), 'ssl'), ['hello ssl 1', 'hello ssl 2']);
    });

    it('is refused without a client certificate, and a broker signed by another CA is refused, both named TLS', async () => {
      const noCert = await doctor(sslConfig('ssl-nocert', { KADE_KAFKA_SSL_CA_FILE: pki.caFile }));
      assert.equal(noCert.code, 1);
      // TLS 1.3: the broker's alert, or a reset when it wins the race; both name the client certificate keys.
      assert.match(noCert.lines.find((l) => /Kafka/.test(l)) ?? '', /^PROBLEM +Kafka: (the TLS handshake with 127\.0\.0\.1:\d+ failed .*Fix: kafka\.ssl\.caFile|cannot reach .*ECONNRESET).*kafka\.ssl\.certFile and kafka\.ssl\.keyFile/);
      const wrongCa = await doctor(sslConfig('ssl-wrongca', { KADE_KAFKA_SSL_CA_FILE: pki.otherCaFile, KADE_KAFKA_SSL_CERT_FILE: pki.clientCertFile, KADE_KAFKA_SSL_KEY_FILE: pki.clientKeyFile }));
      assert.equal(wrongCa.code, 1);
      assert.match(wrongCa.lines.find((l) => /Kafka/.test(l)) ?? '', /^PROBLEM +Kafka: the TLS handshake .*failed \(.*self-signed certificate in certificate chain/);
    });
  });
});
