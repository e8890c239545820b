import { accessSync, constants, statSync } from 'node:fs';
import convict from 'convict';

/** A comma-separated list in env vars and flags, an array in files. */
const stringList = {
  name: 'string-list',
  validate(value: unknown): void {
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) {
      throw new Error('must be a list of non-empty strings (comma-separated in env vars)');
    }
  },
  coerce(value: unknown): unknown {
    return typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : value;
  },
};

const positiveInt = {
  name: 'positive-int',
  validate(value: unknown): void {
    if (!Number.isInteger(value) || (value as number) <= 0) throw new Error('must be a positive integer');
  },
  coerce: (value: unknown): unknown => (typeof value === 'string' ? Number(value) : value),
};

const nonNegativeInt = {
  name: 'non-negative-int',
  validate(value: unknown): void {
    if (!Number.isInteger(value) || (value as number) < 0) throw new Error('must be an integer >= 0');
  },
  coerce: (value: unknown): unknown => (typeof value === 'string' ? Number(value) : value),
};

/** true or false; env vars must say "true" or "false" (convict's Boolean takes "0" as true). */
const flag = {
  name: 'flag',
  validate(value: unknown): void {
    if (typeof value !== 'boolean') throw new Error('must be true or false');
  },
  coerce: (value: unknown): unknown => (value === 'true' ? true : value === 'false' ? false : value),
};

/** Empty, or the path of a readable file (checked when the configuration loads). */
const filePath = {
  name: 'file-path',
  validate(value: unknown): void {
    if (typeof value !== 'string') throw new Error('must be a file path');
    if (value === '') return;
    try {
      if (!statSync(value).isFile()) throw new Error('not a regular file');
      accessSync(value, constants.R_OK);
    } catch (err) {
      throw new Error(`must be a readable file: ${value} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  },
};

/** A redis:// or rediss:// URL. */
const redisUrl = {
  name: 'redis-url',
  validate(value: unknown): void {
    let ok = false;
    try { ok = typeof value === 'string' && ['redis:', 'rediss:'].includes(new URL(value).protocol); } catch { ok = false; }
    if (!ok) throw new Error('must be a redis:// or rediss:// URL');
  },
};

convict.addFormats({
  'string-list': stringList, 'positive-int': positiveInt, 'non-negative-int': nonNegativeInt,
  flag, 'file-path': filePath, 'redis-url': redisUrl,
});

/** The one configuration schema of kade: every key has doc, format, default and env. */
export const schema = {
  env: {
    doc: 'Deployment environment; "production" refuses to start with default secrets.',
    format: ['development', 'test', 'production'],
    default: 'development',
    env: 'KADE_ENV',
  },
  role: {
    doc: 'What this process runs: the router, the detector or both.',
    format: ['router', 'detector', 'all'],
    default: 'all',
    env: 'KADE_ROLE',
    arg: 'role',
  },
  shutdownTimeoutMs: {
    doc: 'On SIGTERM, the in-flight batch, commits and producer flushes must finish within this; then the process exits 1.',
    format: 'positive-int',
    default: 30000,
    env: 'KADE_SHUTDOWN_TIMEOUT_MS',
  },
  log: {
    level: {
      doc: 'pino log level.',
      format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      env: 'KADE_LOG_LEVEL',
    },
  },
  kafka: {
    brokers: {
      doc: 'Kafka bootstrap brokers, host:port.',
      format: 'string-list',
      default: ['127.0.0.1:9092'],
      env: 'KADE_KAFKA_BROKERS',
    },
    clientId: {
      doc: 'Kafka client id prefix.',
      format: String,
      default: 'kade',
      env: 'KADE_KAFKA_CLIENT_ID',
    },
    sessionTimeoutMs: {
      doc: 'Consumer group session timeout in milliseconds.',
      format: 'positive-int',
      default: 30000,
      env: 'KADE_KAFKA_SESSION_TIMEOUT_MS',
    },
    maxBytesPerPartition: {
      doc: 'Upper bound of bytes fetched per partition per fetch; bounds batch size and memory.',
      format: 'positive-int',
      default: 1048576,
      env: 'KADE_KAFKA_MAX_BYTES_PER_PARTITION',
    },
    ssl: {
      enabled: {
        doc: 'Connect to the brokers with TLS (listeners SSL or SASL_SSL).',
        format: 'flag',
        default: false,
        env: 'KADE_KAFKA_SSL_ENABLED',
      },
      caFile: {
        doc: 'PEM file of the CA(s) that signed the brokers\' certificates; empty: the system CAs.',
        format: 'file-path',
        default: '',
        env: 'KADE_KAFKA_SSL_CA_FILE',
      },
      certFile: {
        doc: 'PEM client certificate for mutual TLS (with kafka.ssl.keyFile); empty: none.',
        format: 'file-path',
        default: '',
        env: 'KADE_KAFKA_SSL_CERT_FILE',
      },
      keyFile: {
        doc: 'PEM private key (unencrypted) of kafka.ssl.certFile; empty: none.',
        format: 'file-path',
        default: '',
        env: 'KADE_KAFKA_SSL_KEY_FILE',
      },
      rejectUnauthorized: {
        doc: 'Refuse brokers whose certificate does not verify against the CAs or does not name the broker host; false only for tests.',
        format: 'flag',
        default: true,
        env: 'KADE_KAFKA_SSL_REJECT_UNAUTHORIZED',
      },
    },
    sasl: {
      mechanism: {
        doc: 'SASL mechanism of the brokers\' listener; none: no SASL. PLAIN sends the password as it is: use it with TLS only.',
        format: ['none', 'plain', 'scram-sha-256', 'scram-sha-512'],
        default: 'none',
        env: 'KADE_KAFKA_SASL_MECHANISM',
      },
      username: {
        doc: 'SASL user name; required when kafka.sasl.mechanism is not none.',
        format: String,
        default: '',
        env: 'KADE_KAFKA_SASL_USERNAME',
      },
      password: {
        doc: 'SASL password; production refuses an empty one when kafka.sasl.mechanism is set.',
        format: String,
        default: '',
        env: 'KADE_KAFKA_SASL_PASSWORD',
        sensitive: true,
      },
    },
  },
  topics: {
    raw: {
      doc: 'Raw audit topic: JSON audit Events or EventLists, any key.',
      format: String,
      default: 'k8s.audit.raw',
      env: 'KADE_TOPIC_RAW',
    },
    keyed: {
      doc: 'Internal topic keyed by group (Avro KeyedAuditRecord).',
      format: String,
      default: 'kade.audit.by-actor',
      env: 'KADE_TOPIC_KEYED',
    },
    alerts: {
      doc: 'Alerts topic that SIEMs consume; key = alert id.',
      format: String,
      default: 'k8s.audit.alerts',
      env: 'KADE_TOPIC_ALERTS',
    },
    dlq: {
      doc: 'Dead-letter topic for bad raw records; empty means "<raw topic>.dlq".',
      format: String,
      default: '',
      env: 'KADE_TOPIC_DLQ',
    },
    rawPartitions: {
      doc: 'Partitions of the raw topic when kade creates it.',
      format: 'positive-int',
      default: 3,
      env: 'KADE_TOPIC_RAW_PARTITIONS',
    },
    keyedPartitions: {
      doc: 'Partitions of the keyed topic: the upper bound of detector parallelism.',
      format: 'positive-int',
      default: 6,
      env: 'KADE_TOPIC_KEYED_PARTITIONS',
    },
    alertsPartitions: {
      doc: 'Partitions of the alerts topic when kade creates it.',
      format: 'positive-int',
      default: 1,
      env: 'KADE_TOPIC_ALERTS_PARTITIONS',
    },
    replicationFactor: {
      doc: 'Replication factor of the topics kade creates.',
      format: 'positive-int',
      default: 1,
      env: 'KADE_TOPIC_REPLICATION_FACTOR',
    },
  },
  router: {
    groupId: {
      doc: 'Consumer group of the routers.',
      format: String,
      default: 'kade-router',
      env: 'KADE_ROUTER_GROUP_ID',
    },
    namespaceHeader: {
      doc: 'Record header that names the source cluster; its value becomes data_stream.namespace.',
      format: String,
      default: 'kade.namespace',
      env: 'KADE_ROUTER_NAMESPACE_HEADER',
    },
    defaultNamespace: {
      doc: 'data_stream.namespace of records without the namespace header.',
      format: String,
      default: 'default',
      env: 'KADE_ROUTER_DEFAULT_NAMESPACE',
    },
    timeField: {
      doc: 'Event-time field of the audit Event.',
      format: ['requestReceivedTimestamp', 'stageTimestamp'],
      default: 'requestReceivedTimestamp',
      env: 'KADE_ROUTER_TIME_FIELD',
    },
    alignMs: {
      doc: 'Event-time alignment: a raw partition more than this far ahead of the slowest backlogged one is paused (0: off).',
      format: 'non-negative-int',
      default: 60000,
      env: 'KADE_ROUTER_ALIGN_MS',
    },
    maxJsonDepth: {
      doc: 'Raw records whose JSON nests deeper than this go to the dead-letter topic unparsed.',
      format: 'positive-int',
      default: 64,
      env: 'KADE_ROUTER_MAX_JSON_DEPTH',
    },
    maxMessageBytes: {
      doc: 'Raw records larger than this go to the dead-letter topic unparsed.',
      format: 'positive-int',
      default: 1048576,
      env: 'KADE_ROUTER_MAX_MESSAGE_BYTES',
    },
  },
  detector: {
    groupId: {
      doc: 'Consumer group of the detectors.',
      format: String,
      default: 'kade-detector',
      env: 'KADE_DETECTOR_GROUP_ID',
    },
    latenessMs: {
      doc: 'Allowed lateness: watermark = stream time - lateness.',
      format: 'non-negative-int',
      default: 30000,
      env: 'KADE_DETECTOR_LATENESS_MS',
    },
    idleTimeoutMs: {
      doc: 'A caught-up partition with no records for this long advances its watermark with the wall clock.',
      format: 'positive-int',
      default: 10000,
      env: 'KADE_DETECTOR_IDLE_TIMEOUT_MS',
    },
    flushIntervalMs: {
      doc: 'Write-behind: pane updates of consecutive batches are folded in memory and written to Redis (and the offsets committed) at most this long after the first; sooner when a window closes, a partition is caught up or maxBufferedRecords is reached. 0 (default): every batch.',
      format: 'non-negative-int',
      default: 0,
      env: 'KADE_DETECTOR_FLUSH_INTERVAL_MS',
    },
    maxBufferedRecords: {
      doc: 'Records folded in memory per partition before a write to Redis is forced (bounds memory and the replay after a crash).',
      format: 'positive-int',
      default: 20000,
      env: 'KADE_DETECTOR_MAX_BUFFERED_RECORDS',
    },
    memoryDecisionsMax: {
      doc: 'Groups-panes the detector keeps in memory (exact count, and the values of the condition\'s count_distinct fields up to the first integer above their constants; about 1 KB each on the bench mix) to decide without Redis the windows that cannot match. At the cap, new panes are evaluated in Redis. 0: always Redis.',
      format: 'non-negative-int',
      default: 100000,
      env: 'KADE_DETECTOR_MEMORY_DECISIONS_MAX',
    },
    upstreamGroupId: {
      doc: 'Consumer group feeding the keyed topic; idle partitions advance only when it keeps up with the raw topic. Empty: router.groupId; "none": no upstream check.',
      format: String,
      default: '',
      env: 'KADE_DETECTOR_UPSTREAM_GROUP_ID',
    },
    upstreamMaxLag: {
      doc: 'Upstream backlog (records) under which the routers count as keeping up, so idle partitions may advance.',
      format: 'non-negative-int',
      default: 1000,
      env: 'KADE_DETECTOR_UPSTREAM_MAX_LAG',
    },
    tickMs: {
      doc: 'Wall-clock timer period that checks idle partitions.',
      format: 'positive-int',
      default: 1000,
      env: 'KADE_DETECTOR_TICK_MS',
    },
    stateTtlSeconds: {
      doc: 'TTL of pane state in Redis; must exceed window + lateness + idle timeout.',
      format: 'positive-int',
      default: 3600,
      env: 'KADE_DETECTOR_STATE_TTL_SECONDS',
    },
  },
  alerts: {
    format: {
      doc: 'Encoding of alert records: Avro (schemas/Alert.avsc) or ECS-shaped JSON.',
      format: ['avro', 'json'],
      default: 'avro',
      env: 'KADE_ALERTS_FORMAT',
    },
    suppressionMs: {
      doc: 'After an alert for (rule, group) for the window ending at t, matches for windows ending before t + this are suppressed.',
      format: 'non-negative-int',
      default: 360000,
      env: 'KADE_ALERTS_SUPPRESSION_MS',
    },
  },
  redis: {
    url: {
      doc: 'Redis URL: redis://, or rediss:// for TLS; user and password may be in it (redis://user:password@host:port/db).',
      format: 'redis-url',
      default: 'redis://127.0.0.1:6379',
      env: 'KADE_REDIS_URL',
      sensitive: true,
    },
    keyPrefix: {
      doc: 'Prefix of every key kade writes.',
      format: String,
      default: 'kade',
      env: 'KADE_REDIS_KEY_PREFIX',
    },
    username: {
      doc: 'Redis ACL user; overrides the user of redis.url; empty: the URL\'s (or "default").',
      format: String,
      default: '',
      env: 'KADE_REDIS_USERNAME',
    },
    password: {
      doc: 'Redis password; overrides the password of redis.url, so the URL can stay free of secrets; empty: the URL\'s.',
      format: String,
      default: '',
      env: 'KADE_REDIS_PASSWORD',
      sensitive: true,
    },
    tls: {
      caFile: {
        doc: 'PEM file of the CA(s) that signed the Redis server certificate (rediss:// only); empty: the system CAs.',
        format: 'file-path',
        default: '',
        env: 'KADE_REDIS_TLS_CA_FILE',
      },
      certFile: {
        doc: 'PEM client certificate for Redis servers that require one (tls-auth-clients yes; rediss:// only).',
        format: 'file-path',
        default: '',
        env: 'KADE_REDIS_TLS_CERT_FILE',
      },
      keyFile: {
        doc: 'PEM private key (unencrypted) of redis.tls.certFile.',
        format: 'file-path',
        default: '',
        env: 'KADE_REDIS_TLS_KEY_FILE',
      },
      rejectUnauthorized: {
        doc: 'Refuse a Redis server whose certificate does not verify or does not name the host (rediss:// only); false only for tests.',
        format: 'flag',
        default: true,
        env: 'KADE_REDIS_TLS_REJECT_UNAUTHORIZED',
      },
    },
  },
  rules: {
    dir: {
      doc: 'Folder of rule definitions (*.rule.json); empty means the rules/ folder shipped with kade.',
      format: String,
      default: '',
      env: 'KADE_RULES_DIR',
    },
  },
  http: {
    port: {
      doc: 'Port of /metrics, /live and /ready; 0 disables the server.',
      format: 'port',
      default: 0,
      env: 'KADE_HTTP_PORT',
    },
  },
};

export type ConvictSchema = typeof schema;
