import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSSASLAuthenticationError } from 'kafkajs';
import { ConfigError, loadConfig } from '../../src/config/load';
import { kafkaSecurityOptions } from '../../src/config/kafka-options';
import { redactUrl, redisConnection } from '../../src/config/redis-options';
import { describeWithSources } from '../../src/config/sources';
import { configReference } from '../../src/config/reference';
import { connectionProblem } from '../../src/ops/connection-errors';
import { loggerOptions } from '../../src/ops/logger';
import { TestPki, makeTestPki } from '../helpers/test-pki';

const configError = (re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
  assert.match(e.message, re);
  return true;
};

describe('security settings: Kafka TLS/SASL and Redis TLS/credentials', () => {
  let pki: TestPki;
  let dir: string;
  before(() => {
    pki = makeTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'kade-security-'));
  });
  after(() => {
    pki.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('configuration', () => {
    it('defaults to no TLS and no SASL, with certificate checks on', () => {
      const { config } = loadConfig({ env: {} });
      assert.deepEqual(config.kafka.ssl, { enabled: false, caFile: '', certFile: '', keyFile: '', rejectUnauthorized: true });
      assert.deepEqual(config.kafka.sasl, { mechanism: 'none', username: '', password: '' });
      assert.deepEqual(config.redis.tls, { caFile: '', certFile: '', keyFile: '', rejectUnauthorized: true });
      assert.deepEqual(kafkaSecurityOptions(config), {});
    });

    it('reads every key from KADE_* variables', () => {
      const { config } = loadConfig({
        env: {
          KADE_KAFKA_SSL_ENABLED: 'true', KADE_KAFKA_SSL_CA_FILE: pki.caFile, KADE_KAFKA_SSL_CERT_FILE: pki.clientCertFile,
          KADE_KAFKA_SSL_KEY_FILE: pki.clientKeyFile, KADE_KAFKA_SSL_REJECT_UNAUTHORIZED: 'false',
          KADE_KAFKA_SASL_MECHANISM: 'scram-sha-256', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: 'pw',
          KADE_REDIS_URL: 'rediss://redis:6380', KADE_REDIS_USERNAME: 'ru', KADE_REDIS_PASSWORD: 'rp',
          KADE_REDIS_TLS_CA_FILE: pki.caFile, KADE_REDIS_TLS_CERT_FILE: pki.clientCertFile, KADE_REDIS_TLS_KEY_FILE: pki.clientKeyFile,
          KADE_REDIS_TLS_REJECT_UNAUTHORIZED: 'false',
        },
      });
      assert.deepEqual(config.kafka.ssl, { enabled: true, caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, rejectUnauthorized: false });
      assert.deepEqual(config.kafka.sasl, { mechanism: 'scram-sha-256', username: 'kade', password: 'pw' });
      assert.deepEqual(config.redis.tls, { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, rejectUnauthorized: false });
      assert.equal(config.redis.username, 'ru');
      assert.equal(config.redis.password, 'rp');
    });

    it('takes only "true" and "false" for flags', () => {
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SSL_ENABLED: '1' } }), configError(/kafka\.ssl\.enabled: must be true or false/));
      assert.equal(loadConfig({ env: { KADE_KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' } }).config.kafka.ssl.rejectUnauthorized, false);
    });

    it('refuses an unknown mechanism, a missing user name, and a non-Redis URL', () => {
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SASL_MECHANISM: 'gssapi' } }), configError(/kafka\.sasl\.mechanism: must be one of the possible values/));
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SASL_MECHANISM: 'plain' } }), configError(/kafka\.sasl\.username: required when kafka\.sasl\.mechanism is plain/));
      assert.throws(() => loadConfig({ env: { KADE_REDIS_URL: 'http://redis:6379' } }), configError(/redis\.url: must be a redis:\/\/ or rediss:\/\/ URL/));
    });

    it('lets development run with an empty SASL password, and production refuses it', () => {
      const env = { KADE_KAFKA_SASL_MECHANISM: 'scram-sha-512', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_REDIS_URL: 'redis://redis:6379' };
      assert.equal(loadConfig({ env }).config.kafka.sasl.password, '');
      assert.throws(() => loadConfig({ env: { ...env, KADE_ENV: 'production' } }), configError(/kafka\.sasl\.password: production refuses an empty password/));
      assert.equal(loadConfig({ env: { ...env, KADE_ENV: 'production', KADE_KAFKA_SASL_PASSWORD: 's' } }).config.env, 'production');
    });

    it('names the key of a missing or unreadable file (exit code 2 like every ConfigError)', () => {
      const missing = path.join(dir, 'nope.pem');
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SSL_ENABLED: 'true', KADE_KAFKA_SSL_CA_FILE: missing } }), configError(/kafka\.ssl\.caFile: must be a readable file: .*nope\.pem \(ENOENT\)/));
      assert.throws(() => loadConfig({ env: { KADE_REDIS_URL: 'rediss://r:1', KADE_REDIS_TLS_CA_FILE: dir } }), configError(/redis\.tls\.caFile: must be a readable file: .*\(not a regular file\)/));
      assert.throws(() => describeWithSources({ env: { KADE_KAFKA_SSL_ENABLED: 'true', KADE_KAFKA_SSL_KEY_FILE: missing } }), configError(/kafka\.ssl\.keyFile/), '`kade config` fails the same way');
    });

    it('refuses TLS files that would not be used, and half a client certificate', () => {
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SSL_CA_FILE: pki.caFile } }), configError(/kafka\.ssl\.caFile: set, but kafka\.ssl\.enabled is false/));
      assert.throws(() => loadConfig({ env: { KADE_REDIS_TLS_CA_FILE: pki.caFile } }), configError(/redis\.tls\.caFile: set, but redis\.url is not rediss:\/\//));
      assert.throws(() => loadConfig({ env: { KADE_KAFKA_SSL_ENABLED: 'true', KADE_KAFKA_SSL_CERT_FILE: pki.clientCertFile } }), configError(/kafka\.ssl\.keyFile: a client certificate needs both/));
      assert.throws(() => loadConfig({ env: { KADE_REDIS_URL: 'rediss://r:1', KADE_REDIS_TLS_KEY_FILE: pki.clientKeyFile } }), configError(/redis\.tls\.certFile: a client certificate needs both/));
    });

    it('prints passwords redacted in `kade config`, convict\'s describe() and the reference table', () => {
      const env = {
        KADE_KAFKA_SASL_MECHANISM: 'plain', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: 'kafka-hunter2',
        KADE_REDIS_URL: 'redis://u:url-hunter2@redis:6379', KADE_REDIS_PASSWORD: 'redis-hunter2',
      };
      const text = describeWithSources({ env });
      assert.match(text, /^kafka\.sasl\.password += \[redacted\] +\(env KADE_KAFKA_SASL_PASSWORD\)$/m);
      assert.match(text, /^redis\.password += \[redacted\] +\(env KADE_REDIS_PASSWORD\)$/m);
      assert.match(text, /^kafka\.sasl\.username += "kade" +\(env KADE_KAFKA_SASL_USERNAME\)$/m, 'a user name is not a secret');
      assert.doesNotMatch(text, /hunter2/);
      assert.doesNotMatch(loadConfig({ env }).describe(), /hunter2/);
      assert.match(configReference(), /\| `kafka\.sasl\.password` \| `KADE_KAFKA_SASL_PASSWORD` \| string \| \(secret\) \|/);
    });
  });

  describe('kafkaSecurityOptions', () => {
    it('reads the PEM files into the TLS options of kafkajs', () => {
      const { config } = loadConfig({ env: { KADE_KAFKA_SSL_ENABLED: 'true', KADE_KAFKA_SSL_CA_FILE: pki.caFile, KADE_KAFKA_SSL_CERT_FILE: pki.clientCertFile, KADE_KAFKA_SSL_KEY_FILE: pki.clientKeyFile } });
      const o = kafkaSecurityOptions(config);
      assert.equal(o.sasl, undefined);
      assert.ok(typeof o.ssl === 'object');
      assert.match(String(o.ssl.ca), /^-----BEGIN CERTIFICATE-----/);
      assert.match(String(o.ssl.cert), /^-----BEGIN CERTIFICATE-----/);
      assert.match(String(o.ssl.key), /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(o.ssl.rejectUnauthorized, true);
    });

    it('uses the system CAs when TLS is on without a CA file', () => {
      const { config } = loadConfig({ env: { KADE_KAFKA_SSL_ENABLED: 'true' } });
      assert.deepEqual(kafkaSecurityOptions(config), { ssl: { rejectUnauthorized: true } });
    });

    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      it(`passes SASL ${mechanism} with user and password`, () => {
        const { config } = loadConfig({ env: { KADE_KAFKA_SASL_MECHANISM: mechanism, KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: 'pw' } });
        assert.deepEqual(kafkaSecurityOptions(config), { sasl: { mechanism, username: 'kade', password: 'pw' } });
      });
    }

    it('names the key of a file that is not PEM, not a certificate, or not the key of the certificate', () => {
      const notPem = path.join(dir, 'not.pem');
      writeFileSync(notPem, 'hello');
      const base = loadConfig({ env: {} }).config;
      const withSsl = (ssl: Partial<typeof base.kafka.ssl>) => ({ ...base, kafka: { ...base.kafka, ssl: { ...base.kafka.ssl, enabled: true, ...ssl } } });
      assert.throws(() => kafkaSecurityOptions(withSsl({ caFile: notPem })), configError(/^kafka\.ssl\.caFile: .*not\.pem is not a PEM file/));
      assert.throws(() => kafkaSecurityOptions(withSsl({ caFile: pki.clientKeyFile })), configError(/^kafka\.ssl\.caFile: .* holds no PEM certificate/));
      assert.throws(() => kafkaSecurityOptions(withSsl({ certFile: pki.clientCertFile, keyFile: pki.serverKeyFile })), configError(/^kafka\.ssl\.keyFile: .*server\.key is not the private key of the certificate in kafka\.ssl\.certFile/));
      assert.throws(() => kafkaSecurityOptions(withSsl({ caFile: path.join(dir, 'gone.pem') })), configError(/^kafka\.ssl\.caFile: cannot read .*gone\.pem \(ENOENT\)/), 'a file removed after loading');
      const encrypted = path.join(dir, 'enc.key');
      writeFileSync(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n');
      assert.throws(() => kafkaSecurityOptions(withSsl({ certFile: pki.clientCertFile, keyFile: encrypted })), configError(/^kafka\.ssl\.keyFile: .* is an encrypted private key/));
    });
  });

  describe('redisConnection', () => {
    const conn = (env: NodeJS.ProcessEnv) => redisConnection(loadConfig({ env }).config);

    it('moves the URL\'s credentials into the options, decoded, and keeps them out of the URL', () => {
      const c = conn({ KADE_REDIS_URL: 'redis://kade:p%40ss%3Aword@redis:6379/2' });
      assert.equal(c.url, 'redis://redis:6379/2');
      assert.deepEqual(c.options, { username: 'kade', password: 'p@ss:word' });
      assert.deepEqual(conn({ KADE_REDIS_URL: 'redis://:only-pw@redis:6379' }).options, { password: 'only-pw' });
      assert.deepEqual(conn({ KADE_REDIS_URL: 'redis://redis:6379' }), { url: 'redis://redis:6379', options: {} });
    });

    it('lets redis.username and redis.password override the URL\'s', () => {
      const c = conn({ KADE_REDIS_URL: 'redis://old:old-pw@redis:6379', KADE_REDIS_USERNAME: 'kade', KADE_REDIS_PASSWORD: 'new-pw' });
      assert.deepEqual(c, { url: 'redis://redis:6379', options: { username: 'kade', password: 'new-pw' } });
      assert.deepEqual(conn({ KADE_REDIS_URL: 'redis://old:old-pw@redis:6379', KADE_REDIS_PASSWORD: 'new-pw' }).options, { username: 'old', password: 'new-pw' });
    });

    it('adds TLS with the PEM files for rediss:// only', () => {
      const c = conn({ KADE_REDIS_URL: 'rediss://redis:6380', KADE_REDIS_TLS_CA_FILE: pki.caFile, KADE_REDIS_TLS_CERT_FILE: pki.clientCertFile, KADE_REDIS_TLS_KEY_FILE: pki.clientKeyFile });
      assert.equal(c.url, 'rediss://redis:6380');
      assert.ok(c.options.tls !== undefined);
      assert.match(String(c.options.tls.ca), /BEGIN CERTIFICATE/);
      assert.match(String(c.options.tls.key), /BEGIN PRIVATE KEY/);
      assert.equal(c.options.tls.rejectUnauthorized, true);
      assert.deepEqual(conn({ KADE_REDIS_URL: 'rediss://redis:6380' }).options, { tls: { rejectUnauthorized: true } }, 'system CAs');
      assert.equal(conn({ KADE_REDIS_URL: 'redis://redis:6379' }).options.tls, undefined);
    });

    it('redactUrl drops user and password', () => {
      assert.equal(redactUrl('rediss://kade:hunter2@redis:6380/1'), 'rediss://redis:6380/1');
      assert.equal(redactUrl('not a url'), '(unparsable URL)');
    });
  });

  describe('logs', () => {
    function capture(): { log: pino.Logger; text: () => string } {
      const chunks: string[] = [];
      const sink = new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk.toString()); done(); } });
      return { log: pino(loggerOptions('info'), sink), text: () => chunks.join('') };
    }

    it('censors passwords, Redis URLs, SASL options and private keys at any depth up to a logged config', () => {
      const { log, text } = capture();
      const { config } = loadConfig({ env: { KADE_KAFKA_SASL_MECHANISM: 'scram-sha-512', KADE_KAFKA_SASL_USERNAME: 'kade', KADE_KAFKA_SASL_PASSWORD: 'sasl-hunter2', KADE_REDIS_URL: 'redis://kade:url-hunter2@redis:6379', KADE_REDIS_PASSWORD: 'redis-hunter2' } });
      log.info({ config }, 'config');
      log.info({ password: 'top-hunter2', url: 'redis://:top-url-hunter2@r:1' }, 'top level');
      log.info({ sasl: { mechanism: 'plain', username: 'kade', password: 'plain-hunter2' } }, 'sasl');
      log.child({ module: 'x' }).info({ client: kafkaSecurityOptions(config), ssl: { key: '-----BEGIN PRIVATE KEY-----key-hunter2' } }, 'client');
      log.info({ redis: { tls: { key: 'tls-key-hunter2' } } }, 'tls');
      const out = text();
      assert.equal(out.split('\n').filter((l) => l.length > 0).length, 5, out);
      assert.doesNotMatch(out, /hunter2/);
      assert.match(out, /"password":"\[redacted\]"/);
      const first = JSON.parse(out.split('\n')[0]) as { config: { kafka: { brokers: string[]; sasl: unknown }; redis: { keyPrefix: string } } };
      assert.equal(first.config.kafka.sasl, '[redacted]', 'SASL options are censored whole');
      assert.deepEqual(first.config.kafka.brokers, ['127.0.0.1:9092'], 'what is not secret stays readable');
      assert.equal(first.config.redis.keyPrefix, 'kade');
    });
  });

  describe('connectionProblem', () => {
    it('recognizes SASL rejections and TLS failures by class and code, and nothing else', () => {
      const sasl = connectionProblem(new (KafkaJSSASLAuthenticationError as unknown as new (m: string) => Error)('SASL SCRAM SHA512 authentication failed: invalid credentials'));
      assert.deepEqual([sasl?.service, sasl?.kind], ['Kafka', 'authentication']);
      const tlsCause = Object.assign(new KafkaJSConnectionError('Connection error: self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
      const tls = connectionProblem(new KafkaJSNumberOfRetriesExceeded(tlsCause, { retryCount: 1, retryTime: 1 }));
      assert.deepEqual([tls?.service, tls?.kind], ['Kafka', 'tls']);
      const redisTls = connectionProblem(Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }));
      assert.deepEqual([redisTls?.service, redisTls?.kind], ['Redis', 'tls']);
      assert.equal(connectionProblem(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), null);
      assert.equal(connectionProblem(new KafkaJSConnectionError('Connection timeout')), null);
      assert.equal(connectionProblem(undefined), null);
    });
  });
});
