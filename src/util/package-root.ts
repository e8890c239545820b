import { existsSync } from 'node:fs';
import path from 'node:path';

let cached: string | null = null;

/** The folder holding kade's package.json (works from src/ under ts and from dist/ compiled). */
export function packageRoot(): string {
  if (cached !== null) return cached;
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'schemas'))) return (cached = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find kade's package root above ${__dirname}`);
    dir = parent;
  }
}
