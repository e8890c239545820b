import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { KadeConfig, loadConfig } from '../../src/config/load';
import { redisConnection } from '../../src/config/redis-options';
import { createRedis } from '../../src/main';
import { runDoctor } from '../../src/ops/doctor';
import { createLogger } from '../../src/ops/logger';
import { RedisInstance, startRedisInstance } from '../helpers/redis-instance';
import { TestPki, makeTestPki } from '../helpers/test-pki';

const log = createLogger('silent');

/** Doctor's Redis lines (the Kafka lines are not what this file tests). */
async function redisLines(config: KadeConfig): Promise<string[]> {
  const lines: string[] = [];
  await runDoctor(config, (l) => lines.push(l));
  return lines.filter((l) => / Redis/.test(l));
}

/** kade's client queues nothing while disconnected: wait for the connection, or its first error. */
function connected(redis: ReturnType<typeof createRedis>): Promise<void> {
  return new Promise((resolve, reject) => {
    redis.once('ready', () => resolve());
    redis.once('error', reject);
  });
}

/** A client built by kade (createRedis) that gives up at once instead of reconnecting forever. */
async function pingOnce(config: KadeConfig): Promise<string> {
  const redis = createRedis(config, log);
  try {
    await connected(redis);
    return await redis.ping();
  } finally {
    redis.disconnect();
  }
}

describe('Redis TLS (private redis-server with a TLS port) and ACL credentials from the config', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let serverTls: RedisInstance;
  let mutualTls: RedisInstance;
  const config = (env: NodeJS.ProcessEnv): KadeConfig => loadConfig({ env: { ...env, KADE_LOG_LEVEL: 'silent' } }).config;

  before(async () => {
    pki = makeTestPki();
    const tls = { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile };
    serverTls = await startRedisInstance({ tls: { ...tls, authClients: 'no' } });
    mutualTls = await startRedisInstance({ tls: { ...tls, authClients: 'yes' } });
    const admin = new Redis(serverTls.url);
    await admin.call('ACL', 'SETUSER', 'kade', 'on', '>tls-s3cret', 'resetkeys', '~kadetls:*', '-@all', '+ping', '+info', '+get', '+set', '+eval', '+evalsha');
    await admin.quit();
  });
  after(async () => {
    await serverTls?.stop();
    await mutualTls?.stop();
    pki?.remove();
  });

  it('connects with rediss:// and the CA file, as an ACL user given in redis.username / redis.password', async () => {
    const c = config({ KADE_REDIS_URL: serverTls.tlsUrl, KADE_REDIS_TLS_CA_FILE: pki.caFile, KADE_REDIS_USERNAME: 'kade', KADE_REDIS_PASSWORD: 'tls-s3cret' });
    const redis = createRedis(c, log);
    try {
      // The TLS port speaks nothing but TLS: an answer there is an answer over TLS.
      await connected(redis);
      assert.equal(await redis.ping(), 'PONG');
      await redis.set('kadetls:k', 'v', 'EX', 60);
      assert.equal(await redis.get('kadetls:k'), 'v');
      assert.equal(await redis.eval("return redis.call('GET', KEYS[1])", 1, 'kadetls:k'), 'v', 'Lua scripts run as the ACL user over TLS');
      assert.equal(await redis.call('ACL', 'WHOAMI').catch((e: Error) => e.message.split(' ')[0]), 'NOPERM', 'it is the limited user, not default');
    } finally {
      redis.disconnect();
    }
    const lines = await redisLines(c);
    assert.match(lines[0], /^OK +Redis: reachable at rediss:\/\/127\.0\.0\.1:\d+\.$/, lines.join('\n'));
    assert.ok(lines.every((l) => !l.includes('tls-s3cret')));
  });

  it('takes the credentials from the URL too (redis:// user:password@), and names a wrong password as an authentication failure', async () => {
    const url = `rediss://kade:tls-s3cret@127.0.0.1:${serverTls.tlsPort}`;
    assert.equal(await pingOnce(config({ KADE_REDIS_URL: url, KADE_REDIS_TLS_CA_FILE: pki.caFile })), 'PONG');
    const wrong = config({ KADE_REDIS_URL: `rediss://kade:wrong-pw@127.0.0.1:${serverTls.tlsPort}`, KADE_REDIS_TLS_CA_FILE: pki.caFile });
    const lines = await redisLines(wrong);
    assert.match(lines[0], /^PROBLEM +Redis: authentication failed at rediss:\/\/127\.0\.0\.1:\d+ \(WRONGPASS.*Fix: check the user and password/, lines.join('\n'));
    assert.ok(lines.every((l) => !l.includes('wrong-pw')), 'the password is not printed');
  });

  it('refuses a server certificate signed by another CA', async () => {
    const c = config({ KADE_REDIS_URL: serverTls.tlsUrl, KADE_REDIS_TLS_CA_FILE: pki.otherCaFile });
    const lines = await redisLines(c);
    assert.match(lines[0], /^PROBLEM +Redis: the TLS handshake with rediss:\/\/127\.0\.0\.1:\d+ failed \(self-signed certificate in certificate chain\)\. Fix: redis\.tls\.caFile/, lines.join('\n'));
    // Without a CA file the system CAs apply, which do not know the test CA either.
    const system = await redisLines(config({ KADE_REDIS_URL: serverTls.tlsUrl }));
    assert.match(system[0], /^PROBLEM +Redis: the TLS handshake .* failed/, system.join('\n'));
  });

  it('presents the client certificate to a server that requires one (tls-auth-clients yes)', async () => {
    const withCert = config({ KADE_REDIS_URL: mutualTls.tlsUrl, KADE_REDIS_TLS_CA_FILE: pki.caFile, KADE_REDIS_TLS_CERT_FILE: pki.clientCertFile, KADE_REDIS_TLS_KEY_FILE: pki.clientKeyFile });
    assert.ok(redisConnection(withCert).options.tls?.cert !== undefined);
    assert.equal(await pingOnce(withCert), 'PONG');
    const without = await redisLines(config({ KADE_REDIS_URL: mutualTls.tlsUrl, KADE_REDIS_TLS_CA_FILE: pki.caFile }));
    // TLS 1.3: the client sees either the server's "certificate required" alert or, when the
    // reset wins the race, ECONNRESET; both lines must point at the client certificate keys.
    assert.match(without[0], /^PROBLEM +Redis: (the TLS handshake .* failed \(.*certificate required.*|cannot reach .*ECONNRESET.*requires client certificates .*)redis\.tls\.certFile and redis\.tls\.keyFile/, without.join('\n'));
  });
});
