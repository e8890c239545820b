import assert from 'node:assert/strict';
import { Kafka, Message, Producer, logLevel } from 'kafkajs';
import { DependencyError } from '../../src/ingest/errors';
import { FetchedRecord, createOffsetReader } from '../../src/ingest/offset-reader';
import { freePort } from '../helpers/ports';
import { testKafka, uniqueName, writeInterleavedAborts } from '../helpers/kafka';

/** A map of records as [offset, key, value] rows in offset order (strings, null kept). */
function rows(m: Map<number, FetchedRecord>): Array<[number, string | null, string | null]> {
  return [...m.values()]
    .sort((a, b) => a.offset - b.offset)
    .map((r) => [r.offset, r.key === null ? null : r.key.toString(), r.value === null ? null : r.value.toString()]);
}

const msgs = (prefix: string, n: number, partition: number): Message[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}-k${i}`, value: `${prefix}-v${i}`, partition }));

/** A transactional producer set up like the router's (PartitionTransactions). */
async function txProducer(kafka: Kafka, id: string): Promise<Producer> {
  const p = kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  return p;
}

describe('offset reader on a real broker: records of one partition by offset, outside any group', function () {
  this.timeout(60_000);
  const kafka = testKafka('kade-offset-reader-test');
  const admin = kafka.admin();
  const topics: string[] = [];

  before(async () => { await admin.connect(); });
  after(async () => {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
  });

  async function newTopic(tag: string, numPartitions = 1): Promise<string> {
    const topic = uniqueName(tag);
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
    topics.push(topic);
    return topic;
  }

  it('reads a scattered subset across plain and transactional batches, several offsets per fetch', async () => {
    const topic = await newTopic('or-batches', 2);
    const plain = kafka.producer();
    await plain.connect();
    const tx = await txProducer(kafka, `${topic}-tx`);
    try {
      // Partition 0 holds decoys at the same offsets: the reader must read partition 1 only.
      await plain.send({ topic, messages: msgs('decoy', 20, 0) });
      // Partition 1: one send is one batch.
      //   0-4 batch A (plain)   5-7 batch B (plain, 6 has a null value)
      //   8-11 tx1 (committed), 12 its marker   13-15 tx2 (committed), 16 its marker
      const base: string[] = [];
      base.push((await plain.send({ topic, messages: msgs('a', 5, 1) }))[0].baseOffset!);
      base.push((await plain.send({ topic, messages: [...msgs('b', 1, 1), { key: 'b-k1', value: null, partition: 1 }, ...msgs('b2', 1, 1)] }))[0].baseOffset!);
      for (const [name, n] of [['t1', 4], ['t2', 3]] as const) {
        const t = await tx.transaction();
        base.push((await t.send({ topic, messages: msgs(name, n, 1) }))[0].baseOffset!);
        await t.commit();
      }
      assert.deepEqual(base, ['0', '5', '8', '13'], 'the layout the test expects');
    } finally {
      await Promise.all([plain.disconnect(), tx.disconnect()]);
    }

    const wanted = [14, 3, 1, 6, 9, 4, 11, 3]; // unsorted, 3 twice
    const expected: Array<[number, string | null, string | null]> = [
      [1, 'a-k1', 'a-v1'], [3, 'a-k3', 'a-v3'], [4, 'a-k4', 'a-v4'],
      [6, 'b-k1', null],
      [9, 't1-k1', 't1-v1'], [11, 't1-k3', 't1-v3'],
      [14, 't2-k1', 't2-v1'],
    ];

    // Default maxBytes: one fetch from offset 1 returns every batch up to the end.
    const reader = createOffsetReader(kafka, topic);
    try {
      assert.deepEqual(rows(await reader.read(1, wanted)), expected);
      assert.equal(reader.fetches, 1);
    } finally {
      await reader.close();
    }

    // maxBytes 1: the broker still returns the first whole batch of each fetch, and no more, so
    // the reader walks batch by batch: A (1, 3, 4), B (6), tx1 (9, 11), tx2 (14).
    const small = createOffsetReader(kafka, topic, { maxBytes: 1 });
    try {
      assert.deepEqual(rows(await small.read(1, wanted)), expected);
      assert.equal(small.fetches, 4);
    } finally {
      await small.close();
    }
  });

  it('reads offsets scattered over many batches in waves of parallel fetches, one per batch touched', async () => {
    const topic = await newTopic('or-waves');
    const plain = kafka.producer();
    await plain.connect();
    try {
      // 12 batches of 50 records: 0-49, 50-99, ..., 550-599.
      for (let b = 0; b < 12; b++) await plain.send({ topic, messages: msgs(`b${b}`, 50, 0) });
    } finally {
      await plain.disconnect();
    }
    const reader = createOffsetReader(kafka, topic, { maxBytes: 1 });
    try {
      // 5, 160, 420 and 599 start fetches in the first wave; 170 waits (100 or less behind 160)
      // and is then found in 160's batch (150-199) without a fetch of its own.
      const got = rows(await reader.read(0, [599, 170, 5, 420, 160]));
      assert.deepEqual(got, [
        [5, 'b0-k5', 'b0-v5'], [160, 'b3-k10', 'b3-v10'], [170, 'b3-k20', 'b3-v20'], [420, 'b8-k20', 'b8-v20'], [599, 'b11-k49', 'b11-v49'],
      ]);
      assert.equal(reader.fetches, 4);
      // More offsets than fetches in flight, each in a batch of its own, and one past the end.
      const many = Array.from({ length: 12 }, (_, b) => b * 50 + 7);
      assert.deepEqual(rows(await reader.read(0, [...many, 600])).map((r) => r[0]), many);
      assert.equal(reader.fetches, 4 + 12 + 1);
    } finally {
      await reader.close();
    }
  });

  it('leaves out aborted records, commit and abort markers, and offsets at or past the end', async () => {
    const topic = await newTopic('or-aborted');
    // Like a dead router's transactions fenced by the new owner (helpers/kafka.ts):
    //   0 A1  1 B1  2 A2  3 B2  4 abort(B)  5 abort(A)  6 C1  7 commit(C), then 8 P (plain); end 9
    await writeInterleavedAborts(kafka, topic);
    const plain = kafka.producer();
    await plain.connect();
    try {
      const [{ baseOffset }] = await plain.send({ topic, messages: [{ key: 'p', value: 'P', partition: 0 }] });
      assert.equal(baseOffset, '8', 'the layout the test expects');
    } finally {
      await plain.disconnect();
    }

    const reader = createOffsetReader(kafka, topic);
    try {
      assert.deepEqual(rows(await reader.read(0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1000])), [[6, 'k', 'C1'], [8, 'p', 'P']]);
      // Fetches that start inside both aborted transactions (kafkajs' own filter lets A2 through).
      assert.deepEqual(rows(await reader.read(0, [2, 8])), [[8, 'p', 'P']]);
      assert.deepEqual(rows(await reader.read(0, [3])), []);
      assert.deepEqual(rows(await reader.read(0, [7])), [], 'a commit marker');
      assert.deepEqual(rows(await reader.read(0, [9])), [], 'the high watermark (an empty fetch)');
      assert.deepEqual(rows(await reader.read(0, [1000])), [], 'past the log end (OFFSET_OUT_OF_RANGE)');
      assert.deepEqual(rows(await reader.read(0, [-1, 0.5, 6])), [[6, 'k', 'C1']], 'offsets that cannot exist');
    } finally {
      await reader.close();
    }
  });

  it('leaves out offsets below the log start and reads on past them', async () => {
    const topic = await newTopic('or-deleted');
    const plain = kafka.producer();
    await plain.connect();
    try {
      for (let i = 0; i < 3; i++) await plain.send({ topic, messages: msgs(`s${i}`, 2, 0) }); // 0-1, 2-3, 4-5
    } finally {
      await plain.disconnect();
    }
    await admin.fetchTopicMetadata({ topics: [topic] }); // the admin finds the leader in its metadata
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] });
    const reader = createOffsetReader(kafka, topic);
    try {
      assert.deepEqual(rows(await reader.read(0, [0, 2, 3, 5])), [[3, 's1-k1', 's1-v1'], [5, 's2-k1', 's2-v1']]);
    } finally {
      await reader.close();
    }
  });

  it('connects lazily: an empty list needs no broker, and an unreachable one is a DependencyError', async () => {
    const port = await freePort();
    const nowhere = new Kafka({ clientId: 'kade-test', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 50 } });
    const reader = createOffsetReader(nowhere, uniqueName('or-none'));
    try {
      assert.deepEqual(rows(await reader.read(0, [])), []);
      assert.equal(reader.fetches, 0);
      await assert.rejects(reader.read(0, [0]), (err: unknown) => err instanceof DependencyError && err.dependency === 'kafka');
    } finally {
      await reader.close();
    }
  });

  it('may be created before its topic exists', async () => {
    const name = uniqueName('or-later');
    const reader = createOffsetReader(kafka, name);
    try {
      await admin.createTopics({ topics: [{ topic: name, numPartitions: 1 }], waitForLeaders: true });
      topics.push(name);
      const plain = kafka.producer();
      await plain.connect();
      await plain.send({ topic: name, messages: [{ key: 'x', value: 'late', partition: 0 }] }).finally(() => plain.disconnect());
      assert.deepEqual(rows(await reader.read(0, [0])), [[0, 'x', 'late']]);
    } finally {
      await reader.close();
    }
  });

  it('refuses, at creation, a kafkajs without the internals it drives', () => {
    assert.throws(() => createOffsetReader({} as Kafka, 't'), /offset reader: kafkajs 2\.2\.4 lacks the Kafka instance's private:Kafka:createCluster symbol/);
  });
});
