/**
 * The ceiling: a kafkajs consumer in its own process that does nothing with the records, through
 * kade's own batch loop (eachBatch, resolve after the "handler", commit, heartbeat) and with the
 * consumer options of kade's stages. Configured like kade (KADE_* variables) plus
 * BENCH_NOOP_TOPIC and BENCH_NOOP_GROUP. Runs until SIGTERM.
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import { loadConfig } from '../src/config/load';
import { runBatchLoop } from '../src/ingest/batch-loop';
import { createKafka } from '../src/ingest/kafka';
import { createLogger } from '../src/ops/logger';

async function main(): Promise<void> {
  const topic = process.env.BENCH_NOOP_TOPIC;
  const groupId = process.env.BENCH_NOOP_GROUP;
  if (!topic || !groupId) throw new Error('BENCH_NOOP_TOPIC and BENCH_NOOP_GROUP are required');
  const { config } = loadConfig();
  const log = createLogger(config.log.level);
  const kafka = createKafka(config, log, 'noop');
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    maxBytesPerPartition: config.kafka.maxBytesPerPartition,
    readUncommitted: false,
  });
  let records = 0;
  process.once('SIGTERM', () => {
    consumer.disconnect().then(
      () => { log.info({ records }, 'no-op consumer stopped'); process.exit(0); },
      () => process.exit(1),
    );
  });
  await consumer.connect();
  await runBatchLoop(consumer, topic, async (batch) => { records += batch.messages.length; });
}

main().catch((err: unknown) => {
  process.stderr.write(`noop-consumer: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
