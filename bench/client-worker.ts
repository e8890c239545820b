/**
 * One client, one workload, one process (spawned by bench/clients.ts). Configured by environment:
 *   BENCH_CLIENT   kafkajs | platformatic | confluent
 *   BENCH_MODE     noop     consumer group reads BENCH_TOPIC read_committed, commits, does nothing
 *                  produce  idempotent producer, acks=-1, sends the generated stream to BENCH_TOPIC
 *                           in ~512 KB sends, one after the other; exits with its own timing
 *                  ctp      consume BENCH_TOPIC, one Kafka transaction per batch and input
 *                           partition: the batch's records to BENCH_OUT_TOPIC + sendOffsets
 *                           (what kade's router does, with an identity transform)
 *   BENCH_TOPIC, BENCH_OUT_TOPIC, BENCH_GROUP, BENCH_BROKERS, BENCH_SEED, BENCH_EVENTS,
 *   BENCH_BATCH_RECORDS (confluent eachBatch size cap, default 1000)
 * noop and ctp run until SIGTERM. Every mode prints one line `RESULT {json}` before it exits.
 * The kafkajs driver goes through kade's own boundary (createKafka, createProducer, runBatchLoop,
 * PartitionTransactions, sendChunked); the others use each library's own idiom for the same thing.
 */
import '../src/ingest/kafkajs-read-committed'; // first: exact read_committed in kafkajs
import {
  Consumer as PConsumer, FetchIsolationLevels, Message as PMessage, Producer as PProducer, ProduceAcks, compatibilityPartitioner,
} from '@platformatic/kafka';
import { Message as KMessage } from 'kafkajs';
import { loadConfig } from '../src/config/load';
import { runBatchLoop } from '../src/ingest/batch-loop';
import { createKafka, createProducer } from '../src/ingest/kafka';
import { PartitionTransactions } from '../src/ingest/partition-transactions';
import { sendChunked } from '../src/ingest/send-chunked';
import { createLogger } from '../src/ops/logger';
import { RawMessage, chunkBySize, generateRawMessages, messageBytes } from './lib/client-messages';

const NS = 'kade.namespace';
const NS_BUF = Buffer.from(NS);
const MAX_SEND_BYTES = 512 * 1024;
const MAX_BYTES_PER_PARTITION = 1024 * 1024;

interface Env {
  client: string;
  mode: string;
  topic: string;
  outTopic: string;
  group: string;
  brokers: string[];
  seed: number;
  events: number;
  batchRecords: number;
}

function env(): Env {
  const need = (k: string): string => {
    const v = process.env[k];
    if (v === undefined || v === '') throw new Error(`${k} is required`);
    return v;
  };
  return {
    client: need('BENCH_CLIENT'),
    mode: need('BENCH_MODE'),
    topic: need('BENCH_TOPIC'),
    outTopic: process.env.BENCH_OUT_TOPIC ?? '',
    group: process.env.BENCH_GROUP ?? '',
    brokers: need('BENCH_BROKERS').split(','),
    seed: Number(process.env.BENCH_SEED ?? 42),
    events: Number(process.env.BENCH_EVENTS ?? 0),
    batchRecords: Number(process.env.BENCH_BATCH_RECORDS ?? 1000),
  };
}

function result(r: Record<string, unknown>): void {
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

/** Runs `stop` on SIGTERM, prints the result and exits 0. */
function untilSigterm(stop: () => Promise<void>, report: () => Record<string, unknown>): void {
  process.once('SIGTERM', () => {
    const r = report();
    stop().then(() => { result(r); process.exit(0); }, (err: unknown) => {
      process.stderr.write(`stop failed: ${(err as Error)?.stack ?? String(err)}\n`);
      result(r);
      process.exit(0);
    });
  });
}

/** Produce mode: generation happens before the clock starts; only the sends are timed. */
async function timedSends(send: (chunk: RawMessage[]) => Promise<void>, e: Env, close: () => Promise<void>): Promise<void> {
  const messages = generateRawMessages(e.seed, e.events);
  const chunks = chunkBySize(messages, (m) => messageBytes(m.key, m.value, NS.length + m.namespace.length), MAX_SEND_BYTES);
  await send(chunks[0].slice(0, 1)); // connection, metadata and producer id outside the clock
  const t0 = process.hrtime.bigint();
  for (const c of chunks) await send(c);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await close();
  result({ records: messages.length, warmup: 1, sends: chunks.length, seconds });
}

// ---------------------------------------------------------------------------------------------
// kafkajs, through kade's boundary

async function kafkajs(e: Env): Promise<void> {
  const { config } = loadConfig();
  const log = createLogger(config.log.level);
  const kafka = createKafka(config, log, `bench-${e.mode}`);
  if (e.mode === 'produce') {
    const producer = createProducer(kafka);
    await producer.connect();
    await timedSends(async (chunk) => {
      const messages: KMessage[] = chunk.map((m) => ({ key: m.key, value: m.value, headers: { [NS]: m.namespace } }));
      await sendChunked(producer, [{ topic: e.topic, messages }], { acks: -1 });
    }, e, () => producer.disconnect());
    return;
  }
  const consumer = kafka.consumer({
    groupId: e.group,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    maxBytesPerPartition: config.kafka.maxBytesPerPartition,
    readUncommitted: false,
  });
  let records = 0;
  let batches = 0;
  if (e.mode === 'noop') {
    untilSigterm(() => consumer.disconnect(), () => ({ records, batches }));
    await consumer.connect();
    await runBatchLoop(consumer, e.topic, async (batch) => { records += batch.messages.length; batches++; });
    return;
  }
  if (e.mode === 'ctp') {
    const tx = new PartitionTransactions(kafka, `${e.group}-tx`, e.group, log);
    untilSigterm(async () => { await consumer.disconnect(); await tx.close(); }, () => ({ records, batches }));
    await consumer.connect();
    await runBatchLoop(consumer, e.topic, async (batch) => {
      const messages: KMessage[] = batch.messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers }));
      await tx.commit(
        { topic: batch.topic, partition: batch.partition, nextOffset: String(Number(batch.lastOffset()) + 1) },
        [{ topic: e.outTopic, messages }],
      );
      records += batch.messages.length;
      batches++;
    }, { autoCommit: false });
    return;
  }
  throw new Error(`unknown mode ${e.mode}`);
}

// ---------------------------------------------------------------------------------------------
// @platformatic/kafka: a per-message stream; batches are rebuilt per partition (up to the fetch
// size kade uses, or whatever arrived when the stream goes quiet for a moment).

async function platformatic(e: Env): Promise<void> {
  const base = { clientId: `kade-bench-${e.mode}`, bootstrapBrokers: e.brokers };
  if (e.mode === 'produce') {
    const producer = new PProducer({ ...base, idempotent: true, acks: ProduceAcks.ALL, partitioner: compatibilityPartitioner });
    await timedSends(async (chunk) => {
      await producer.send({ messages: chunk.map((m) => ({ topic: e.topic, key: m.key, value: m.value, headers: new Map([[NS_BUF, m.namespace]]) })) });
    }, e, () => producer.close());
    return;
  }
  const consumer = new PConsumer({
    ...base,
    groupId: e.group,
    sessionTimeout: 30_000,
    maxBytesPerPartition: MAX_BYTES_PER_PARTITION,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
  });
  let records = 0;
  let batches = 0;
  if (e.mode === 'noop') {
    // Auto-commit every 100 ms of what the stream handed out (kafkajs: after every batch).
    const stream = await consumer.consume({ topics: [e.topic], mode: 'earliest', autocommit: 100 });
    untilSigterm(async () => { await stream.close(); await consumer.close(); }, () => ({ records }));
    stream.on('data', () => { records++; });
    await new Promise<void>((resolve, reject) => { stream.once('error', reject); stream.once('close', resolve); });
    return;
  }
  if (e.mode === 'ctp') {
    const producers = new Map<number, Promise<PProducer>>();
    const producerFor = (partition: number): Promise<PProducer> => {
      let p = producers.get(partition);
      if (p === undefined) {
        const pr = new PProducer({ ...base, transactionalId: `${e.group}-tx-${partition}`, idempotent: true, acks: ProduceAcks.ALL, partitioner: compatibilityPartitioner });
        p = pr.initIdempotentProducer({}).then(() => pr);
        producers.set(partition, p);
      }
      return p;
    };
    const stream = await consumer.consume({ topics: [e.topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false });
    untilSigterm(async () => {
      await stream.close();
      await consumer.close();
      await Promise.all([...producers.values()].map(async (p) => (await p).close()));
    }, () => ({ records, batches }));
    const pending = new Map<number, { msgs: PMessage[]; bytes: number }>();
    let working: Promise<void> = Promise.resolve();
    let idle: NodeJS.Timeout | null = null;
    const commitBatch = async (partition: number, msgs: PMessage[]): Promise<void> => {
      const producer = await producerFor(partition);
      const tx = await producer.beginTransaction();
      try {
        await tx.addConsumer(consumer);
        for (const chunk of chunkBySize(msgs, (m) => messageBytes(m.key, m.value, NS.length + 16), MAX_SEND_BYTES)) {
          await tx.send({ messages: chunk.map((m) => ({ topic: e.outTopic, key: m.key, value: m.value, headers: m.headers })) });
        }
        await tx.addOffset(msgs[msgs.length - 1]);
        await tx.commit();
      } catch (err) {
        await tx.abort().catch(() => undefined);
        throw err;
      }
      records += msgs.length;
      batches++;
    };
    const flush = (which: number[]): void => {
      const jobs: Array<[number, PMessage[]]> = [];
      for (const p of which) {
        const b = pending.get(p);
        if (b !== undefined && b.msgs.length > 0) jobs.push([p, b.msgs]);
        pending.delete(p);
      }
      if (jobs.length === 0) return;
      stream.pause();
      working = working.then(async () => {
        for (const [p, msgs] of jobs) await commitBatch(p, msgs);
      }).then(() => { stream.resume(); }, (err: unknown) => {
        process.stderr.write(`ctp batch failed: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exit(1);
      });
    };
    stream.on('data', (m: PMessage) => {
      let b = pending.get(m.partition);
      if (b === undefined) { b = { msgs: [], bytes: 0 }; pending.set(m.partition, b); }
      b.msgs.push(m);
      b.bytes += (m.key?.length ?? 0) + (m.value?.length ?? 0);
      if (b.bytes >= MAX_BYTES_PER_PARTITION) flush([m.partition]);
      if (idle !== null) clearTimeout(idle);
      idle = setTimeout(() => flush([...pending.keys()]), 10);
    });
    await new Promise<void>((resolve, reject) => { stream.once('error', reject); stream.once('close', resolve); });
    return;
  }
  throw new Error(`unknown mode ${e.mode}`);
}

// ---------------------------------------------------------------------------------------------
// @confluentinc/kafka-javascript, its KafkaJS-compatible API (librdkafka underneath). Not a
// dependency (a native build that fails here without flags, docs/kafka-clients.md): loaded at run time, typed here by the little it uses,
// so that kade builds without it.

interface CMessage { key: Buffer | null; value: Buffer | null; headers?: Record<string, unknown> }
interface CProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(r: { topic: string; messages: Array<{ key: Buffer | null; value: Buffer | null; headers?: Record<string, unknown> }> }): Promise<unknown>;
  transaction(): Promise<CTransaction>;
}
interface CTransaction extends Pick<CProducer, 'send'> {
  sendOffsets(a: { consumer: CConsumer; topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> }): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}
interface CBatchPayload {
  batch: { topic: string; partition: number; messages: CMessage[]; lastOffset(): string };
  resolveOffset(offset: string): void;
  isRunning(): boolean;
  isStale(): boolean;
}
interface CConsumer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  subscribe(s: { topic: string }): Promise<void>;
  run(r: { eachBatchAutoResolve: boolean; partitionsConsumedConcurrently: number; eachBatch(p: CBatchPayload): Promise<void> }): Promise<void>;
}
interface CKafka {
  producer(c: Record<string, unknown>): CProducer;
  consumer(c: Record<string, unknown>): CConsumer;
}
interface ConfluentModule { KafkaJS: { Kafka: new (c: Record<string, unknown>) => CKafka; logLevel: Record<string, number> } }

async function confluent(e: Env): Promise<void> {
  const Confluent = (require('@confluentinc/kafka-javascript') as ConfluentModule).KafkaJS;
  const kafka = new Confluent.Kafka({ kafkaJS: { clientId: `kade-bench-${e.mode}`, brokers: e.brokers, logLevel: Confluent.logLevel.WARN } });
  if (e.mode === 'produce') {
    const producer = kafka.producer({ kafkaJS: { idempotent: true, acks: -1 } });
    await producer.connect();
    await timedSends(async (chunk) => {
      await producer.send({ topic: e.topic, messages: chunk.map((m) => ({ key: m.key, value: m.value, headers: { [NS]: m.namespace } })) });
    }, e, () => producer.disconnect());
    return;
  }
  const ctp = e.mode === 'ctp';
  if (!ctp && e.mode !== 'noop') throw new Error(`unknown mode ${e.mode}`);
  const consumer = kafka.consumer({
    kafkaJS: {
      groupId: e.group,
      fromBeginning: true,
      sessionTimeout: 30_000,
      maxBytesPerPartition: MAX_BYTES_PER_PARTITION,
      readUncommitted: false,
      // noop: the stored offsets of what was handed out, every 100 ms; ctp: only sendOffsets.
      autoCommit: !ctp,
      autoCommitInterval: 100,
    },
    // kafkajs hands out what one fetch returned per partition (~1 MiB, ~1000 audit events);
    // this client caps eachBatch at 32 records unless told otherwise.
    'js.consumer.max.batch.size': e.batchRecords,
  });
  let records = 0;
  let batches = 0;
  const producers = new Map<number, Promise<CProducer>>();
  const producerFor = (partition: number): Promise<CProducer> => {
    let p = producers.get(partition);
    if (p === undefined) {
      const pr = kafka.producer({ kafkaJS: { transactionalId: `${e.group}-tx-${partition}`, idempotent: true, acks: -1, maxInFlightRequests: 1 } });
      p = pr.connect().then(() => pr);
      producers.set(partition, p);
    }
    return p;
  };
  untilSigterm(async () => {
    await consumer.disconnect();
    await Promise.all([...producers.values()].map(async (p) => (await p).disconnect()));
  }, () => ({ records, batches }));
  await consumer.connect();
  await consumer.subscribe({ topic: e.topic });
  await consumer.run({
    eachBatchAutoResolve: !ctp,
    partitionsConsumedConcurrently: 1,
    eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
      if (!isRunning() || isStale() || batch.messages.length === 0) return;
      if (ctp) {
        const producer = await producerFor(batch.partition);
        const tx = await producer.transaction();
        try {
          for (const chunk of chunkBySize(batch.messages, (m) => messageBytes(m.key, m.value, NS.length + 16), MAX_SEND_BYTES)) {
            await tx.send({ topic: e.outTopic, messages: chunk.map((m) => ({ key: m.key, value: m.value, headers: m.headers })) });
          }
          await tx.sendOffsets({
            consumer,
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }] }],
          });
          await tx.commit();
        } catch (err) {
          await tx.abort().catch(() => undefined);
          throw err;
        }
        resolveOffset(batch.lastOffset());
      }
      records += batch.messages.length;
      batches++;
    },
  });
  await new Promise<void>(() => undefined); // until SIGTERM
}

const DRIVERS: Record<string, (e: Env) => Promise<void>> = { kafkajs, platformatic, confluent };

async function main(): Promise<void> {
  const e = env();
  const driver = DRIVERS[e.client];
  if (driver === undefined) throw new Error(`unknown client ${e.client}`);
  await driver(e);
  if (e.mode === 'produce') process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`client-worker ${process.env.BENCH_CLIENT}/${process.env.BENCH_MODE}: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
