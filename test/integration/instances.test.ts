import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import Redis from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { type KafkaInstance, startKafkaInstance } from '../helpers/kafka-instance';
import { type RedisInstance, redisPing, startRedisInstance } from '../helpers/redis-instance';

/** Produce one message to a fresh topic and read it back with a consumer group. */
async function roundTrip(brokers: string[], tag: string): Promise<string> {
  const kafka = new Kafka({ clientId: `instances-${tag}`, brokers, logLevel: logLevel.NOTHING });
  const topic = `instances-${tag}-${Date.now()}`;
  const admin = kafka.admin();
  const producer = kafka.producer();
  const consumer = kafka.consumer({ groupId: `g-${topic}`, sessionTimeout: 6000, heartbeatInterval: 500 });
  try {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: `hello-${tag}` }] });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message consumed within 30 s')), 30_000);
      consumer.run({
        eachMessage: async ({ message }) => { clearTimeout(timer); resolve(String(message.value)); },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

describe('test/helpers: private broker instances', function () {
  describe('kafka-instance', function () {
    this.timeout(240_000);
    let k: KafkaInstance | undefined;
    after(async () => { await k?.stop(); });

    it('starts, produces+consumes, survives a restart and a kill, and stops', async () => {
      k = await startKafkaInstance();
      assert.equal(k.brokers.length, 1);
      assert.notEqual(k.port, 9092);
      assert.ok(k.running && k.pid);
      assert.equal(await roundTrip(k.brokers, 'a'), 'hello-a');

      await k.restart(); // graceful stop + start on the same ports and data
      assert.ok(k.running);
      const admin = new Kafka({ brokers: k.brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      const cluster = await admin.describeCluster();
      assert.equal(cluster.clusterId, k.clusterId);
      assert.ok((await admin.listTopics()).some((t) => t.startsWith('instances-a-')), 'topic kept across restart');
      await admin.disconnect();
      assert.equal(await roundTrip(k.brokers, 'b'), 'hello-b');

      await k.kill(); // crash
      assert.equal(k.running, false);
      await k.restart();
      assert.equal(await roundTrip(k.brokers, 'c'), 'hello-c');

      const dir = k.dir;
      await k.stop();
      assert.equal(k.running, false);
      assert.equal(existsSync(dir), false);
      k = undefined;
    });
  });

  describe('redis-instance', function () {
    this.timeout(60_000);
    let r: RedisInstance | undefined;
    let client: Redis | undefined;
    afterEach(async () => {
      client?.disconnect();
      client = undefined;
      await r?.stop();
      r = undefined;
    });

    it('starts, SET+GET, restarts (empty without persistence), and stops', async () => {
      r = await startRedisInstance();
      assert.notEqual(r.port, 6379);
      client = new Redis({ host: r.host, port: r.port, maxRetriesPerRequest: 50, retryStrategy: () => 100 });
      assert.equal(await client.set('k', 'v'), 'OK');
      assert.equal(await client.get('k'), 'v');

      await r.restart();
      assert.equal(await client.get('k'), null); // ioredis reconnected; no persistence

      const { port, dir } = r;
      await r.stop();
      assert.equal(await redisPing('127.0.0.1', port, 500), false);
      assert.equal(existsSync(dir), false);
      r = undefined;
    });

    it('keeps data across kill() + restart() with appendOnly', async () => {
      r = await startRedisInstance({ appendOnly: true });
      client = new Redis({ host: r.host, port: r.port, maxRetriesPerRequest: 50, retryStrategy: () => 100 });
      await client.set('durable', '1');
      await r.kill();
      assert.equal(r.running, false);
      await r.restart();
      assert.equal(await client.get('durable'), '1');
    });
  });
});
