import assert from 'node:assert/strict';
import { UpstreamBacklog } from '../../src/detect/upstream-backlog';
import { testKafka, uniqueName } from '../helpers/kafka';

describe('upstream backlog (real broker): may idle partitions advance?', function () {
  this.timeout(60_000);

  it('a small backlog counts as drained only while the routers commit progress', async () => {
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    const topic = uniqueName('upstream');
    const group = uniqueName('routers');
    const upstream = new UpstreamBacklog(kafka, group, topic, 1000);
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: String(i) })) });
      await producer.disconnect();
      const commit = (offset: number) => admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: String(offset) }] });
      await commit(5);
      assert.equal(await upstream.drained(), false, 'first look at a backlog: progress unknown');
      assert.equal(await upstream.drained(), false, 'a backlog of 15 that does not move: stalled');
      await commit(12);
      assert.equal(await upstream.drained(), true, 'a backlog of 8 under the limit, moving: a live router');
      assert.equal(await upstream.drained(), false, 'the same backlog, no longer moving');
      await commit(20);
      assert.equal(await upstream.drained(), true, 'no backlog');
      assert.equal(await upstream.drained(), true, 'no backlog, nothing needs to move');
    } finally {
      await upstream.close();
      await admin.deleteGroups([group]).catch(() => undefined);
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
