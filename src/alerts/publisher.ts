import { Kafka, Producer } from 'kafkajs';
import { AlertSink } from '../detect/detector';
import { Alert } from './alert';
import { createProducer } from '../ingest/kafka';
import { sendChunked } from '../ingest/send-chunked';
import { AlertCodec, AlertFormat, CONTENT_TYPE } from './codec';

/** Publishes alerts to the alerts topic, keyed by alert id; resolves when the broker acked all. */
export class KafkaAlertSink implements AlertSink {
  private producer: Producer | null = null;
  private readonly codec = new AlertCodec();

  constructor(private readonly kafka: Kafka, private readonly topic: string, private readonly format: AlertFormat) {}

  async connect(): Promise<void> {
    this.producer = createProducer(this.kafka);
    await this.producer.connect();
  }

  async publish(alerts: Alert[]): Promise<void> {
    if (this.producer === null) throw new Error('alert sink used before connect()');
    await sendChunked(this.producer, [{
      topic: this.topic,
      messages: alerts.map((a) => ({
        key: a.id,
        value: this.codec.encode(a, this.format),
        headers: { 'content-type': CONTENT_TYPE[this.format], 'kade.rule.id': a.ruleId },
      })),
    }], { acks: -1 });
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
  }
}
