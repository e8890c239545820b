import pino from 'pino';

export type Logger = pino.Logger;

/** The one pino root; modules take child loggers. Secrets are redacted wherever they appear. */
export function createLogger(level: string, destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { service: 'kade' },
      redact: { paths: ['*.password', '*.url', 'redis.url', 'sasl', '*.sasl'], censor: '[redacted]' },
    },
    pino.destination({ fd: destination === process.stdout ? 1 : 2, sync: false }),
  );
}
