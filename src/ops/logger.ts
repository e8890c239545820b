import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Fields censored wherever they appear, up to three levels deep (e.g. a logged `config` object:
 * config.kafka.sasl.password, config.redis.url). A Redis URL may carry a password, so every
 * `url` field is censored; log redactUrl(url) under another name to show where Redis is.
 */
export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', '*.*.*.password',
  'url', '*.url', '*.*.url', '*.*.*.url',
  'sasl', '*.sasl', '*.*.sasl',
  // Private keys of TLS client options (kafkajs `ssl`, ioredis `tls`), should such an object be logged.
  'ssl.key', '*.ssl.key', '*.*.ssl.key', 'tls.key', '*.tls.key', '*.*.tls.key',
];

/** The options of kade's pino root (exported for tests). */
export function loggerOptions(level: string): pino.LoggerOptions {
  return { level, base: { service: 'kade' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
}

/** The one pino root; modules take child loggers. Secrets are redacted wherever they appear. */
export function createLogger(level: string, destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(loggerOptions(level), pino.destination({ fd: destination === process.stdout ? 1 : 2, sync: false }));
}
