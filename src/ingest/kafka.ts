// First: kafkajs must load with kade's exact read_committed filter (see the module).
import { assertReadCommittedIsExact } from './kafkajs-read-committed';
import { fastProduceInstalled } from './kafkajs-fast-produce';
import { Kafka, LogEntry, Producer, ProducerConfig, logLevel } from 'kafkajs';
import { kafkaSecurityOptions } from '../config/kafka-options';
import { KadeConfig } from '../config/load';
import { Logger } from '../ops/logger';
import { FastDefaultPartitioner } from './partitioner';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error', [logLevel.WARN]: 'warn', [logLevel.INFO]: 'info', [logLevel.DEBUG]: 'debug',
};

/** createKafka warns once when kade's Produce encoder is not installed. */
let warnedSlowProduce = false;

/**
 * A kafkajs client whose logs go to pino (kafkajs INFO chatter is demoted to debug), with the
 * TLS and SASL settings of the config (a bad PEM file throws a ConfigError here). Throws when the
 * kafkajs in this process would let aborted records through to read_committed consumers.
 */
export function createKafka(config: KadeConfig, log: Logger, clientSuffix: string): Kafka {
  assertReadCommittedIsExact();
  if (!fastProduceInstalled() && !warnedSlowProduce) {
    // Only speed is at stake (kafkajs' own encoder writes the same bytes), so a warning, once.
    warnedSlowProduce = true;
    log.warn('kafkajs encodes Produce requests itself (kade\'s encoder needs kafkajs 2.2.4 and to load first): producing costs more CPU');
  }
  const klog = log.child({ module: 'kafkajs' });
  return new Kafka({
    clientId: `${config.kafka.clientId}-${clientSuffix}`,
    brokers: config.kafka.brokers,
    ...kafkaSecurityOptions(config),
    logLevel: logLevel.WARN,
    retry: { initialRetryTime: 200, retries: 8 },
    logCreator: () => ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      const lvl = LEVELS[level] ?? 'debug';
      klog[lvl === 'info' ? 'debug' : lvl]({ namespace, ...rest }, message);
    },
  });
}

/**
 * An idempotent producer with Java-compatible key partitioning (murmur2), so a group always lands
 * on the partition any other Kafka client would pick. Idempotence needs unlimited retries: a send
 * waits out a broker outage instead of failing (and being retried with a new sequence number).
 */
export function createProducer(kafka: Kafka, extra: Partial<ProducerConfig> = {}): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: FastDefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 10_000 },
    ...extra,
  });
}
