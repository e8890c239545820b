import type avro from 'avsc';
import { avroType } from '../util/avro';
import { Alert } from './alert';
import { toEcs } from './ecs';

export type AlertFormat = 'avro' | 'json';

export const CONTENT_TYPE: Record<AlertFormat, string> = {
  avro: 'avro/binary; schema=io.kade.alert.Alert',
  json: 'application/json',
};

/** Encodes alerts for the alerts topic and decodes what is found there (either format). */
export class AlertCodec {
  private readonly type: avro.Type = avroType('Alert.avsc');

  encode(alert: Alert, format: AlertFormat): Buffer {
    return format === 'avro' ? this.type.toBuffer(alert) : Buffer.from(JSON.stringify(toEcs(alert)));
  }

  /** Decodes an Avro alert; JSON alerts are ECS documents and are returned parsed. */
  decode(buf: Buffer, contentType: string | undefined): { format: AlertFormat; alert?: Alert; ecs?: Record<string, unknown> } {
    if (contentType === CONTENT_TYPE.json || (contentType === undefined && buf[0] === 0x7b)) {
      return { format: 'json', ecs: JSON.parse(buf.toString('utf8')) as Record<string, unknown> };
    }
    return { format: 'avro', alert: this.type.fromBuffer(buf) as Alert };
  }
}
