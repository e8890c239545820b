import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

export const REDIS_URL = process.env.KADE_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A unique key prefix per test, so tests never see each other's state. */
export function uniquePrefix(tag: string): string {
  return `kadetest-${tag}-${randomBytes(4).toString('hex')}`;
}

export async function deleteByPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) n += await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  return n;
}

export async function keysByPrefix(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}
