import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** kade's metrics, base units, bounded labels (topic, stage, outcome, rule). */
export class Metrics {
  readonly registry = new Registry();
  readonly recordsIn = new Counter({ name: 'kade_records_in_total', help: 'Kafka records read, per topic', labelNames: ['topic'], registers: [this.registry] });
  readonly outcomes = new Counter({
    name: 'kade_events_total',
    help: 'Audit events by final outcome: routed, filtered, dead_lettered, already_committed (router; the last: routed by an earlier owner of the partition, skipped); applied, late (detector)',
    labelNames: ['stage', 'outcome'],
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'kade_batch_duration_seconds', help: 'Time to process one Kafka batch', labelNames: ['stage'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry],
  });
  readonly windowsClosed = new Counter({ name: 'kade_windows_closed_total', help: 'Windows evaluated (per partition)', registers: [this.registry] });
  readonly rebuilds = new Counter({
    name: 'kade_state_rebuilds_total', help: 'Partitions whose Redis state was lost and rebuilt by replay, by cause', labelNames: ['cause'], registers: [this.registry],
  });
  readonly alerts = new Counter({ name: 'kade_alerts_total', help: 'Rule matches by outcome: published, suppressed, or unreadable (none of its records could be read back from the keyed topic)', labelNames: ['outcome'], registers: [this.registry] });
  readonly alertRecordsMissing = new Counter({
    name: 'kade_alert_records_missing_total',
    help: 'Records of matching windows that could not be read back from the keyed topic for values() (retention shorter than the detector\'s lag plus the window?)',
    registers: [this.registry],
  });
  readonly redisSeconds = new Histogram({
    name: 'kade_redis_call_duration_seconds', help: 'Duration of one pipelined Redis round trip, by operation', labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry],
  });
  readonly consumerLag = new Gauge({ name: 'kade_consumer_lag_records', help: 'Records behind the end of this process\'s partitions', labelNames: ['stage'], registers: [this.registry] });
  readonly watermarkLag = new Gauge({ name: 'kade_watermark_lag_seconds', help: 'Wall clock minus the lowest partition watermark', registers: [this.registry] });

  constructor(withDefaults = false) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'kade_' });
  }
}

/** Sums per-partition lag reported by kafkajs batch events into one gauge per stage. */
export class LagTracker {
  private readonly lag = new Map<number, number>();

  constructor(private readonly metrics: Metrics, private readonly stage: string) {}

  note(partition: number, offsetLag: number): void {
    this.lag.set(partition, offsetLag);
    let sum = 0;
    for (const v of this.lag.values()) sum += v;
    this.metrics.consumerLag.set({ stage: this.stage }, sum);
  }

  reset(): void {
    this.lag.clear();
    this.metrics.consumerLag.set({ stage: this.stage }, 0);
  }
}
