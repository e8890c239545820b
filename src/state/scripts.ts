import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis, Result } from 'ioredis';
import { packageRoot } from '../util/package-root';

/**
 * The Lua scripts, registered once per connection under versioned names (bump the suffix when a
 * script's contract changes so a mixed-version fleet never runs a script it does not expect).
 */
export const SCRIPTS = {
  kadeUpdatePanesV4: 'updatePanes-N.lua',
  kadeEvalWindowsV4: 'evalWindows-N.lua',
} as const;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    kadeUpdatePanesV4(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<number[], Context>;
    kadeEvalWindowsV4(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<unknown[], Context>;
    kadeEvalWindowsV4Buffer(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<unknown[], Context>;
  }
}

export function luaSource(file: string): string {
  return readFileSync(path.join(packageRoot(), 'src', 'state', 'lua', file), 'utf8');
}

export function registerScripts(redis: Redis): void {
  for (const [name, file] of Object.entries(SCRIPTS)) {
    if (typeof (redis as unknown as Record<string, unknown>)[name] === 'function') continue;
    redis.defineCommand(name, { lua: luaSource(file) });
  }
}
