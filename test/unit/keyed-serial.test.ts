import assert from 'node:assert/strict';
import { KeyedSerial } from '../../src/util/serial';

/** A task that records its start and end, and finishes when `release` is called. */
function gate(log: string[], name: string): { task: () => Promise<string>; release: () => void } {
  let release!: () => void;
  const done = new Promise<void>((r) => { release = r; });
  return {
    task: async () => {
      log.push(`${name}+`);
      await done;
      log.push(`${name}-`);
      return name;
    },
    release: () => release(),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyedSerial: per-key order, concurrency across keys, barriers', () => {
  it('runs tasks of one key one at a time, in call order', async () => {
    const s = new KeyedSerial<number>();
    const log: string[] = [];
    const a = gate(log, 'a');
    const b = gate(log, 'b');
    const pa = s.run(1, a.task);
    const pb = s.run(1, b.task);
    await tick();
    assert.deepEqual(log, ['a+']);
    a.release();
    await pa;
    await tick();
    assert.deepEqual(log, ['a+', 'a-', 'b+']);
    b.release();
    assert.equal(await pb, 'b');
  });

  it('runs tasks of different keys at the same time', async () => {
    const s = new KeyedSerial<number>();
    const log: string[] = [];
    const a = gate(log, 'a');
    const b = gate(log, 'b');
    const pa = s.run(1, a.task);
    const pb = s.run(2, b.task);
    await tick();
    assert.deepEqual(log.sort(), ['a+', 'b+']);
    b.release();
    a.release();
    await Promise.all([pa, pb]);
  });

  it('makes runAll wait for every earlier task and every later task wait for it', async () => {
    const s = new KeyedSerial<number>();
    const log: string[] = [];
    const a = gate(log, 'a');
    const b = gate(log, 'b');
    const x = gate(log, 'x');
    const c = gate(log, 'c');
    const pa = s.run(1, a.task);
    const pb = s.run(2, b.task);
    const px = s.runAll(x.task);
    const pc = s.run(3, c.task); // a key never seen before the barrier still waits for it
    await tick();
    a.release();
    await pa;
    await tick();
    assert.ok(!log.includes('x+'), 'the barrier started while a task of key 2 was running');
    b.release();
    await pb;
    await tick();
    assert.deepEqual(log.slice(-1), ['x+']);
    assert.ok(!log.includes('c+'), 'a task queued after the barrier started before it ended');
    x.release();
    await px;
    await tick();
    assert.deepEqual(log.slice(-2), ['x-', 'c+']);
    c.release();
    await pc;
  });

  it('goes on after a failed task, and hands its error to its caller only', async () => {
    const s = new KeyedSerial<string>();
    const failed = s.run('p', async () => { throw new Error('boom'); });
    const next = s.run('p', async () => 'next');
    const all = s.runAll(async () => 'all');
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'next');
    assert.equal(await all, 'all');
  });
});
