import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Kafka } from 'kafkajs';
import { createKafka } from '../../src/ingest/kafka';
import { createLogger } from '../../src/ops/logger';
import { isolatedConfig, testKafka, uniqueName, waitFor, writeInterleavedAborts } from '../helpers/kafka';

async function readFrom(kafka: Kafka, topic: string, offset: string): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('rc'), readUncommitted: false });
  const seen: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let sought = false;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (!sought) consumer.seek({ topic, partition: 0, offset });
      sought = true;
    });
    await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value!.toString()); } });
    // C1 is the last record: once it is read, everything before it has been judged.
    await waitFor(`C1 on ${topic} (have ${seen.join(',')})`, async () => seen.includes('C1'), 30_000);
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

describe('read_committed on a real broker: records of aborted transactions never reach kade', function () {
  this.timeout(90_000);

  it('drops transactions that ended out of order, reading from the start and from inside them', async () => {
    const config = isolatedConfig('rc');
    const topic = config.topics.keyed;
    const admin = testKafka().admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      await writeInterleavedAborts(testKafka(), topic);
      const kafka = createKafka(config, createLogger('silent'), 'rc-test');
      assert.deepEqual(await readFrom(kafka, topic, '0'), ['C1'], 'a reader from offset 0');
      assert.deepEqual(await readFrom(kafka, topic, '2'), ['C1'], 'a reader from offset 2 (both aborted transactions began before it)');
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });

  it('kade refuses to build a Kafka client when kafkajs was loaded before its filter could be installed', () => {
    const dist = join(__dirname, '..', '..', 'src');
    const script = `require('kafkajs');
      const { createKafka } = require(${JSON.stringify(join(dist, 'ingest', 'kafka.js'))});
      const { loadConfig } = require(${JSON.stringify(join(dist, 'config', 'load.js'))});
      const { createLogger } = require(${JSON.stringify(join(dist, 'ops', 'logger.js'))});
      try { createKafka(loadConfig({ env: {} }).config, createLogger('silent'), 'x'); console.log('built'); }
      catch (e) { console.log('refused: ' + e.message); }`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' } });
    assert.match(r.stdout, /^refused: kafkajs was loaded before kade could replace its aborted-transaction filter/, r.stderr);
  });
});
