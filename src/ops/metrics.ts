import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** kade's metrics, base units, bounded labels (topic, stage, outcome, rule). */
export class Metrics {
  readonly registry = new Registry();
  readonly recordsIn = new Counter({ name: 'kade_records_in_total', help: 'Kafka records read, per topic', labelNames: ['topic'], registers: [this.registry] });
  readonly outcomes = new Counter({
    name: 'kade_events_total',
    help: 'Audit events by final outcome: routed, filtered, dead_lettered (router); applied, late (detector)',
    labelNames: ['stage', 'outcome'],
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'kade_batch_duration_seconds', help: 'Time to process one Kafka batch', labelNames: ['stage'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry],
  });
  readonly windowsClosed = new Counter({ name: 'kade_windows_closed_total', help: 'Windows evaluated (per partition)', registers: [this.registry] });
  readonly alerts = new Counter({ name: 'kade_alerts_total', help: 'Rule matches by outcome: published or suppressed', labelNames: ['outcome'], registers: [this.registry] });
  readonly watermarkLag = new Gauge({ name: 'kade_watermark_lag_seconds', help: 'Wall clock minus the lowest partition watermark', registers: [this.registry] });

  constructor(withDefaults = false) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'kade_' });
  }
}
