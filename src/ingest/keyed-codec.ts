import type avro from 'avsc';
import { avroType } from '../util/avro';
import { GroupKey } from '../detect/compiled-plan';
import { AuditRecord } from './audit-record';

export interface KeyedAuditRecord {
  rule: string;
  group: GroupKey;
  eventTime: number;
  record: AuditRecord;
}

/** Avro codec of the keyed topic's values (schemas/KeyedAuditRecord.avsc). */
export class KeyedCodec {
  private readonly type: avro.Type;

  constructor() {
    avroType('AuditRecord.avsc');
    this.type = avroType('KeyedAuditRecord.avsc');
  }

  encode(value: KeyedAuditRecord): Buffer {
    return this.type.toBuffer(value);
  }

  decode(buf: Buffer): KeyedAuditRecord {
    return this.type.fromBuffer(buf) as KeyedAuditRecord;
  }
}
