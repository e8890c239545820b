/**
 * Prints the top self-time functions of .cpuprofile files:
 * node dist/bench/profile-summary.js [--from-ms A --to-ms B] FILE... (A, B: ms from the profile's
 * start; only samples in between count).
 */
import { summarizeProfile } from './lib/profile';

const args = process.argv.slice(2);
const opt = (name: string): number | undefined => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const fromMs = opt('--from-ms');
const toMs = opt('--to-ms');
const window = fromMs !== undefined || toMs !== undefined ? { fromMs: fromMs ?? 0, toMs: toMs ?? Infinity } : undefined;
for (const file of args) {
  const s = summarizeProfile(file, Number(process.env.TOP ?? 15), window);
  const span = window ? ` (samples from ${window.fromMs} to ${window.toMs} ms)` : '';
  process.stdout.write(`${file}: busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.wallMs / 1000).toFixed(1)} s wall${span}; GC ${(s.gcMs / 1000).toFixed(1)} s\n`);
  for (const f of s.top) process.stdout.write(`  ${(f.selfShare * 100).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}  ${f.location}\n`);
  process.stdout.write('  by area:\n');
  for (const a of s.byArea) process.stdout.write(`  ${(a.selfShare * 100).toFixed(1).padStart(5)}%  ${a.area}\n`);
}
