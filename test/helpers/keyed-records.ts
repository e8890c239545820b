import { DetectorRecord, KeyedRecords } from '../../src/detect/detector';
import { groupKafkaKey } from '../../src/detect/group-id';
import { KeyedCodec } from '../../src/ingest/keyed-codec';

/**
 * The keyed topic of in-process detector tests, which feed DetectorRecords they built (with
 * `record` and `group`) instead of consuming a topic: the records a matching window's values()
 * are read back from, encoded as the router writes them. The real reader (offset-reader.ts) is
 * tested against the broker, and end to end through the stage.
 */
export class MemoryKeyedRecords implements KeyedRecords {
  /** Offsets asked for, over every read. */
  readonly asked: number[] = [];
  private readonly codec = new KeyedCodec();

  constructor(private readonly ruleId: string, private readonly partition: (p: number) => readonly DetectorRecord[]) {}

  async read(partition: number, offsets: number[]): Promise<Map<number, { key: Buffer | null; value: Buffer | null }>> {
    this.asked.push(...offsets);
    const want = new Set(offsets);
    const out = new Map<number, { key: Buffer | null; value: Buffer | null }>();
    for (const r of this.partition(partition)) {
      if (!want.has(r.offset)) continue;
      if (r.record === undefined || r.group === undefined) throw new Error('MemoryKeyedRecords: records need `record` and `group`');
      out.set(r.offset, {
        key: Buffer.from(groupKafkaKey(r.group)),
        value: this.codec.encode({ rule: this.ruleId, group: r.group, eventTime: r.eventTime, record: r.record }),
      });
    }
    return out;
  }
}
