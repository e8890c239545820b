import type { RedisOptions } from 'ioredis';
import { ConfigError, KadeConfig } from './load';
import { tlsOptions } from './tls-files';

export interface RedisConnection {
  /** redis.url without user and password: safe to print. */
  url: string;
  /** Credentials (redis.username / redis.password over the URL's) and, for rediss://, TLS. */
  options: RedisOptions;
}

/**
 * How every Redis client of kade connects: `new Redis(c.url, { ...c.options, ...own })`. The
 * credentials move from the URL into the options (ioredis lets URL fields win over options, so
 * an override would otherwise be ignored), and TLS files are read here for rediss:// URLs.
 */
export function redisConnection(config: KadeConfig): RedisConnection {
  let u: URL;
  try {
    u = new URL(config.redis.url);
  } catch (err) {
    throw new ConfigError('redis.url: must be a redis:// or rediss:// URL', { cause: err });
  }
  const username = config.redis.username !== '' ? config.redis.username : decodeURIComponent(u.username);
  const password = config.redis.password !== '' ? config.redis.password : decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  const options: RedisOptions = {};
  if (username !== '') options.username = username;
  if (password !== '') options.password = password;
  if (u.protocol === 'rediss:') options.tls = tlsOptions(config.redis.tls, 'redis.tls');
  return { url: u.toString().replace(/\/$/, ''), options };
}

/** A Redis URL without user and password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable URL)';
  }
}
