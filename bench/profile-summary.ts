/** Prints the top self-time functions of .cpuprofile files: node dist/bench/profile-summary.js FILE... */
import { summarizeProfile } from './lib/profile';

for (const file of process.argv.slice(2)) {
  const s = summarizeProfile(file, Number(process.env.TOP ?? 15));
  process.stdout.write(`${file}: busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.wallMs / 1000).toFixed(1)} s wall; GC ${(s.gcMs / 1000).toFixed(1)} s\n`);
  for (const f of s.top) process.stdout.write(`  ${(f.selfShare * 100).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}  ${f.location}\n`);
  process.stdout.write('  by area:\n');
  for (const a of s.byArea) process.stdout.write(`  ${(a.selfShare * 100).toFixed(1).padStart(5)}%  ${a.area}\n`);
}
