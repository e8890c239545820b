import { readFileSync } from 'node:fs';
import { LoadOptions, loadConfig } from './load';
import { schema } from './schema';

/**
 * Where the effective value of each configuration key comes from. convict has no public per-key
 * source API, so this re-derives it with convict's own precedence (see convict's `loadFile` and
 * `importEnvironment`, and `load()` in ./load.ts):
 *
 *   default  <  files (in order; KADE_CONFIG_FILE's first, then --config)  <  env KADE_*  <  overrides
 */

interface Leaf {
  doc: string;
  default: unknown;
  env?: string;
  sensitive?: boolean;
}

export interface KeySource {
  key: string;
  /** The effective value; `[redacted]` for sensitive keys. */
  value: unknown;
  /** `default`, `env KADE_X`, `file <path>` or `override`. */
  source: string;
  sensitive: boolean;
}

function isLeaf(v: unknown): v is Leaf {
  return typeof v === 'object' && v !== null && 'doc' in v && 'default' in v;
}

function leaves(): Array<{ key: string; leaf: Leaf }> {
  const out: Array<{ key: string; leaf: Leaf }> = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      if (isLeaf(v)) out.push({ key, leaf: v });
      else walk(v as Record<string, unknown>, key);
    }
  };
  walk(schema as unknown as Record<string, unknown>, '');
  return out;
}

/** Whether a nested object holds the dotted path (as an own property at every step). */
function holds(obj: unknown, path: string[]): boolean {
  let o = obj;
  for (const seg of path) {
    if (typeof o !== 'object' || o === null || Array.isArray(o) || !Object.prototype.hasOwnProperty.call(o, seg)) return false;
    o = (o as Record<string, unknown>)[seg];
  }
  return true;
}

function valueAt(obj: unknown, path: string[]): unknown {
  let o = obj;
  for (const seg of path) o = (o as Record<string, unknown>)[seg];
  return o;
}

/** The files loadConfig reads, in the order it applies them. */
function configFiles(opts: LoadOptions): string[] {
  const files = [...(opts.files ?? [])];
  const fromEnv = (opts.env ?? process.env).KADE_CONFIG_FILE;
  if (fromEnv) files.unshift(...fromEnv.split(',').filter((f) => f.length > 0));
  return files;
}

/** Every configuration key with its effective value and where that value comes from. */
export function configSources(opts: LoadOptions = {}): KeySource[] {
  // Validates first: an invalid configuration throws the same ConfigError as everywhere else.
  const { config } = loadConfig(opts);
  const env = opts.env ?? process.env;
  // convict parses every file with JSON.parse (no other parser is registered in kade).
  const files = configFiles(opts).map((path) => ({ path, content: JSON.parse(readFileSync(path, 'utf8')) as unknown }));
  const overrides = Object.entries(opts.overrides ?? {});
  return leaves().map(({ key, leaf }) => {
    const path = key.split('.');
    let source = 'default';
    for (const f of files) if (holds(f.content, path)) source = `file ${f.path}`;
    if (leaf.env !== undefined && env[leaf.env] !== undefined) source = `env ${leaf.env}`;
    for (const [k, v] of overrides) {
      // An override names the key itself, or a parent whose object value holds the key.
      if (k === key || (key.startsWith(`${k}.`) && holds(v, path.slice(k.split('.').length)))) source = 'override';
    }
    const sensitive = leaf.sensitive === true;
    return { key, value: sensitive ? '[redacted]' : valueAt(config, path), source, sensitive };
  });
}

/** The effective configuration, one line per key: `key = value   (source)`; secrets `[redacted]`. */
export function describeWithSources(opts: LoadOptions = {}): string {
  const rows = configSources(opts).map((s) => ({ left: `${s.key} = ${s.sensitive ? '[redacted]' : JSON.stringify(s.value)}`, source: s.source }));
  const width = Math.max(...rows.map((r) => r.left.length));
  return rows.map((r) => `${r.left.padEnd(width)}   (${r.source})`).join('\n');
}
