import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../src/util/package-root';

export interface Machine {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  kernel: string;
  node: string;
  java: string;
  redis: string;
  kafka: string;
  kafkajs: string;
  loadAvgAtStart: number[];
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stderr?: string };
    return (e.stderr ?? '').trim() || 'unknown';
  }
}

export function machineInfo(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const javaOut = (() => {
    try {
      return execFileSync('java', ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      return '';
    }
  })();
  // java -version prints to stderr; execFileSync returns stdout only, so ask through a shell.
  const java = javaOut.trim() || tryRun('bash', ['-c', 'java -version 2>&1 | head -1']);
  let kafka = 'unknown';
  try {
    const libs = readdirSync(path.join(packageRoot(), '.kafka')).find((d) => d.startsWith('libs-'));
    if (libs) kafka = `Apache Kafka ${libs.slice('libs-'.length)} (single-node KRaft, scripts/kafka.sh)`;
  } catch {
    // no local broker runtime
  }
  const kafkajs = (JSON.parse(readFileSync(path.join(packageRoot(), 'node_modules', 'kafkajs', 'package.json'), 'utf8')) as { version: string }).version;
  return {
    nproc: Number(tryRun('nproc', [])) || os.cpus().length,
    memoryGiB: Math.round((memKb / 1024 / 1024) * 10) / 10,
    cpuModel: model,
    kernel: os.release(),
    node: process.version,
    java,
    redis: tryRun('redis-server', ['--version']),
    kafka,
    kafkajs,
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** A plain-text table with aligned columns. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function mdTable(header: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** The hand-written blocks of a generated file: each from a `<!-- KEEP -->` line to its `<!-- /KEEP -->` line. */
export function keptBlocks(text: string): string[] {
  return [...text.matchAll(/^<!-- KEEP -->$[\s\S]*?^<!-- \/KEEP -->$/gm)].map((m) => m[0]);
}
