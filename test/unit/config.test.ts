import assert from 'node:assert/strict';
import { ConfigError, dlqTopic, loadConfig } from '../../src/config/load';

describe('configuration (convict, strict)', () => {
  it('has defaults that work on a laptop', () => {
    const { config } = loadConfig({ env: {} });
    assert.deepEqual(config.kafka.brokers, ['127.0.0.1:9092']);
    assert.equal(config.redis.url, 'redis://127.0.0.1:6379');
    assert.equal(config.detector.latenessMs, 30_000);
    assert.equal(config.alerts.suppressionMs, 360_000);
    assert.equal(dlqTopic(config), 'k8s.audit.raw.dlq');
  });

  it('reads KADE_* environment variables with types', () => {
    const { config } = loadConfig({ env: { KADE_KAFKA_BROKERS: 'a:1, b:2', KADE_DETECTOR_LATENESS_MS: '5000', KADE_ALERTS_FORMAT: 'json', KADE_TOPIC_DLQ: 'bad' } });
    assert.deepEqual(config.kafka.brokers, ['a:1', 'b:2']);
    assert.equal(config.detector.latenessMs, 5000);
    assert.equal(config.alerts.format, 'json');
    assert.equal(dlqTopic(config), 'bad');
  });

  it('names the bad key and the expected form', () => {
    assert.throws(() => loadConfig({ env: { KADE_TOPIC_KEYED_PARTITIONS: '0' } }), (e: unknown) => e instanceof ConfigError && /topics\.keyedPartitions: must be a positive integer/.test(e.message));
    assert.throws(() => loadConfig({ env: { KADE_ALERTS_FORMAT: 'xml' } }), /alerts\.format: must be one of the possible values/);
    assert.throws(() => loadConfig({ env: {}, overrides: { 'kafka.brokers': [''] } }), /kafka\.brokers: must be a list of non-empty strings/);
  });

  it('refuses the default Redis URL in production', () => {
    assert.throws(() => loadConfig({ env: { KADE_ENV: 'production' } }), /redis\.url: production requires/);
    assert.equal(loadConfig({ env: { KADE_ENV: 'production', KADE_REDIS_URL: 'redis://redis:6379' } }).config.env, 'production');
  });

  it('redacts secrets when printed', () => {
    const { describe } = loadConfig({ env: { KADE_REDIS_URL: 'redis://kade:hunter2@r:6379' } });
    assert.doesNotMatch(describe(), /hunter2/);
  });
});
