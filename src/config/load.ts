import convict from 'convict';
import { schema } from './schema';

export interface KadeConfig {
  env: 'development' | 'test' | 'production';
  role: 'router' | 'detector' | 'all';
  shutdownTimeoutMs: number;
  log: { level: string };
  kafka: {
    brokers: string[]; clientId: string; sessionTimeoutMs: number; maxBytesPerPartition: number;
    ssl: TlsFiles & { enabled: boolean };
    sasl: { mechanism: SaslMechanism; username: string; password: string };
  };
  topics: {
    raw: string; keyed: string; alerts: string; dlq: string;
    rawPartitions: number; keyedPartitions: number; alertsPartitions: number; replicationFactor: number;
  };
  router: {
    groupId: string; namespaceHeader: string; defaultNamespace: string;
    timeField: 'requestReceivedTimestamp' | 'stageTimestamp'; alignMs: number; maxJsonDepth: number; maxMessageBytes: number;
  };
  detector: { groupId: string; latenessMs: number; idleTimeoutMs: number; flushIntervalMs: number; maxBufferedRecords: number; memoryDecisionsMax: number; upstreamGroupId: string; upstreamMaxLag: number; tickMs: number; stateTtlSeconds: number };
  alerts: { format: 'avro' | 'json'; suppressionMs: number };
  redis: { url: string; keyPrefix: string; username: string; password: string; tls: TlsFiles };
  rules: { dir: string };
  http: { port: number };
}

export type SaslMechanism = 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** PEM files of a TLS client; '' = not set. */
export interface TlsFiles { caFile: string; certFile: string; keyFile: string; rejectUnauthorized: boolean }

export interface LoadOptions {
  /** Config files applied in order over the defaults. */
  files?: string[];
  /** Environment (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  /** Values set last, e.g. from command-line flags. */
  overrides?: Record<string, unknown>;
}

/** Invalid configuration: the message names the key and the expected form. */
export class ConfigError extends Error {
  readonly retriable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** Loads and strictly validates the configuration; errors name the bad key and the expected form. */
export function loadConfig(opts: LoadOptions = {}): { config: KadeConfig; describe: () => string } {
  try {
    return load(opts);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // convict reports "configuration param 'x' not declared in the schema" for unknown keys.
    const message = (err as Error).message.replace(/configuration param '([^']+)' not declared in the schema/g, "$1: unknown key (not in kade's configuration schema)");
    throw new ConfigError(message, { cause: err });
  }
}

function load(opts: LoadOptions): { config: KadeConfig; describe: () => string } {
  const conf = convict(schema, { env: opts.env ?? process.env, args: [] });
  const files = [...(opts.files ?? [])];
  const fromEnv = (opts.env ?? process.env).KADE_CONFIG_FILE;
  if (fromEnv) files.unshift(...fromEnv.split(',').filter((f) => f.length > 0));
  if (files.length > 0) conf.loadFile(files);
  for (const [key, value] of Object.entries(opts.overrides ?? {})) conf.set(key, value);
  conf.validate({ allowed: 'strict' });
  const config = conf.getProperties() as unknown as KadeConfig;
  if (config.env === 'production' && config.redis.url === schema.redis.url.default) {
    // Not a secret here, but production must say where its state lives.
    throw new ConfigError('redis.url: production requires an explicit Redis URL (KADE_REDIS_URL)');
  }
  checkSecurity(config);
  return { config, describe: () => conf.toString() };
}

/** Settings that are valid one by one but not together; each message names the keys. */
function checkSecurity(config: KadeConfig): void {
  const { ssl, sasl } = config.kafka;
  if (sasl.mechanism !== 'none' && sasl.username === '') {
    throw new ConfigError(`kafka.sasl.username: required when kafka.sasl.mechanism is ${sasl.mechanism} (KADE_KAFKA_SASL_USERNAME)`);
  }
  if (config.env === 'production' && sasl.mechanism !== 'none' && sasl.password === '') {
    throw new ConfigError(`kafka.sasl.password: production refuses an empty password with kafka.sasl.mechanism ${sasl.mechanism} (KADE_KAFKA_SASL_PASSWORD)`);
  }
  if (!ssl.enabled) {
    for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
      // A CA file without TLS would silently connect in plain text.
      if (ssl[k] !== '') throw new ConfigError(`kafka.ssl.${k}: set, but kafka.ssl.enabled is false (KADE_KAFKA_SSL_ENABLED=true to use TLS)`);
    }
  }
  pairOfFiles(ssl, 'kafka.ssl');
  const tls = new URL(config.redis.url).protocol === 'rediss:';
  if (!tls) {
    for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
      if (config.redis.tls[k] !== '') throw new ConfigError(`redis.tls.${k}: set, but redis.url is not rediss:// (TLS settings apply to rediss:// only)`);
    }
  }
  pairOfFiles(config.redis.tls, 'redis.tls');
}

function pairOfFiles(files: TlsFiles, prefix: string): void {
  if ((files.certFile === '') !== (files.keyFile === '')) {
    const missing = files.certFile === '' ? 'certFile' : 'keyFile';
    throw new ConfigError(`${prefix}.${missing}: a client certificate needs both ${prefix}.certFile and ${prefix}.keyFile`);
  }
}

/** The dead-letter topic of the raw topic. */
export function dlqTopic(config: KadeConfig): string {
  return config.topics.dlq.length > 0 ? config.topics.dlq : `${config.topics.raw}.dlq`;
}

/** The consumer group whose backlog holds idle detector partitions back (null: none). */
export function upstreamGroup(config: KadeConfig): string | null {
  const g = config.detector.upstreamGroupId;
  if (g === 'none') return null;
  return g.length > 0 ? g : config.router.groupId;
}
