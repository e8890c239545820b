import assert from 'node:assert/strict';
import { Partitioners, PartitionMetadata } from 'kafkajs';
import { groupKafkaKey } from '../../src/detect/group-id';
import { FastDefaultPartitioner, keyPartition, murmur2 } from '../../src/ingest/partitioner';
import { mulberry32 } from '../helpers/audit-generator';

/** The fast partitioner must pick exactly the partition the Java client and kafkajs pick. */

function metadata(n: number, leaderless: number[] = []): PartitionMetadata[] {
  return Array.from({ length: n }, (_, p) => ({
    partitionErrorCode: 0, partitionId: p, leader: leaderless.includes(p) ? -1 : 0, replicas: [0], isr: [0],
  }));
}

describe('partitioner (murmur2, Java-compatible)', () => {
  it('gives the Java client murmur2 values (Kafka UtilsTest vectors)', () => {
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [text, hash] of cases) assert.equal(murmur2(Buffer.from(text)), hash, text);
  });

  it('picks the same partition as kafkajs DefaultPartitioner for many random keys and partition counts', () => {
    const rnd = mulberry32(7);
    const theirs = Partitioners.DefaultPartitioner();
    const ours = FastDefaultPartitioner();
    let compared = 0;
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(rnd() * 70); // every tail length, empty key included
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(rnd() * 256);
      const partitionMetadata = metadata(1 + Math.floor(rnd() * 64));
      const message = { key: bytes, value: null };
      assert.equal(
        ours({ topic: 't', partitionMetadata, message }),
        theirs({ topic: 't', partitionMetadata, message }),
        `key ${bytes.toString('hex')} over ${partitionMetadata.length} partitions`,
      );
      compared++;
    }
    assert.equal(compared, 20_000);
  });

  it('hashes string keys as their UTF-8 bytes (group keys with non-ASCII usernames and nulls)', () => {
    const theirs = Partitioners.DefaultPartitioner();
    const keys = [
      groupKafkaKey(['alice', '10.0.0.1']), groupKafkaKey([null, null]), groupKafkaKey(['jürgen@example.com', '2001:db8::1']),
      groupKafkaKey(['用户', null]), groupKafkaKey(['emoji 😀', '192.0.2.1']), '',
    ];
    for (const key of keys) {
      for (const n of [1, 3, 6, 7, 12, 100]) {
        const partitionMetadata = metadata(n);
        const expected = theirs({ topic: 't', partitionMetadata, message: { key, value: null } });
        assert.equal(keyPartition(key, n), expected, `${key} over ${n}`);
        assert.equal(keyPartition(Buffer.from(key), n), expected, `${key} (bytes) over ${n}`);
      }
    }
  });

  it('keeps an explicit partition and follows a partition count change', () => {
    const ours = FastDefaultPartitioner();
    assert.equal(ours({ topic: 't', partitionMetadata: metadata(6), message: { key: 'k', value: null, partition: 4 } }), 4);
    const key = groupKafkaKey(['alice', '10.0.0.1']);
    const seen = new Set<number>();
    for (const n of [6, 12]) {
      const p = ours({ topic: 't', partitionMetadata: metadata(n), message: { key, value: null } });
      assert.equal(p, keyPartition(key, n));
      seen.add(p);
    }
    assert.ok([...seen].every((p) => p >= 0 && p < 12));
  });

  it('spreads records without a key over the partitions that have a leader', () => {
    const ours = FastDefaultPartitioner();
    const partitionMetadata = metadata(4, [1]);
    const picked = new Set<number>();
    for (let i = 0; i < 12; i++) picked.add(ours({ topic: 't', partitionMetadata, message: { value: 'x' } }));
    assert.deepEqual([...picked].sort(), [0, 2, 3]);
  });
});
