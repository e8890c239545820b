import assert from 'node:assert/strict';
import { PartitionClock } from '../../src/window/partition-clock';

const MIN = 60_000;
const spec = { sizeMs: 6 * MIN, hopMs: MIN };
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const fresh = { streamTime: null, lastClosed: null, idleWatermark: null };

describe('partition clock: stream time, watermark, lateness, idleness', () => {
  it('has no watermark before the first record', () => {
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, 0);
    assert.equal(c.watermark(), null);
    assert.deepEqual(c.closableWindowEnds(null), []);
  });

  it('keeps the watermark lateness behind the max event time, never moving back', () => {
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, 0);
    c.observe(T0 + 5 * MIN, 0);
    c.observe(T0 + 2 * MIN, 0); // out of order: stream time stays
    assert.equal(c.watermark(), T0 + 5 * MIN - 30_000);
  });

  it('closes a window only once the watermark reaches its end', () => {
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, 0);
    c.observe(T0 + 10, 0);
    c.observe(T0 + MIN + 29_999, 0); // watermark T0 + 59.999 s: window ending T0+1m still open
    assert.deepEqual(c.closableWindowEnds(T0), []);
    c.observe(T0 + MIN + 30_000, 0); // watermark exactly T0 + 1m
    assert.deepEqual(c.closableWindowEnds(T0), [T0 + MIN]);
    c.markClosed(T0 + MIN);
    assert.deepEqual(c.closableWindowEnds(T0), []);
  });

  it('calls an event late only when every window holding it is closed', () => {
    const c = new PartitionClock(spec, 30_000, 10_000, { streamTime: T0 + 20 * MIN, lastClosed: T0 + 10 * MIN, idleWatermark: null }, 0);
    // pane T0+4m is in windows ending T0+5m..T0+10m: all closed
    assert.equal(c.isLate(T0 + 4 * MIN + 59_999), true);
    // pane T0+5m is also in the window ending T0+11m: still open
    assert.equal(c.isLate(T0 + 5 * MIN), false);
  });

  it('advances an idle, caught-up partition with the wall clock after the idle timeout', () => {
    let wall = T0 + 20 * MIN; // wall clock ahead of event time, as in a replay
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, wall);
    c.observe(T0, wall);
    wall += 9_999;
    assert.equal(c.advanceIdle(wall, true), false, 'not idle long enough');
    wall += 1;
    assert.equal(c.advanceIdle(wall, false), false, 'a partition with lag is never idle');
    assert.equal(c.advanceIdle(wall, true), true);
    assert.equal(c.watermark(), Math.floor((wall - 30_000) / MIN) * MIN, 'now - lateness, down to a window end');
  });

  it('moves the idle watermark once per hop, not on every tick (each move is a checkpoint commit)', () => {
    let wall = T0 + 20 * MIN + 45_000;
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, wall - 60_000);
    c.observe(T0, wall - 60_000);
    assert.equal(c.advanceIdle(wall, true), true);
    assert.equal(c.watermark(), T0 + 20 * MIN);
    let moves = 0;
    for (let tick = 0; tick < 120; tick++) {
      wall += 1000;
      assert.equal(c.wouldAdvanceIdle(wall), c.advanceIdle(wall, true) && ++moves > 0);
    }
    assert.equal(moves, 2, 'two window ends passed in 120 s');
    assert.equal(c.watermark(), T0 + 22 * MIN);
  });

  it('never gives an idle watermark to a partition that has seen no record', () => {
    const c = new PartitionClock(spec, 30_000, 10_000, fresh, 0);
    assert.equal(c.advanceIdle(T0 + 60 * MIN, true), false);
    assert.equal(c.watermark(), null);
  });

  it('lets a new record restart the idle timer', () => {
    let wall = 5_000_000;
    const c = new PartitionClock(spec, 0, 10_000, fresh, wall);
    c.observe(T0, wall);
    wall += 8_000;
    c.observe(T0 + 1, wall);
    wall += 8_000;
    assert.equal(c.advanceIdle(wall, true), false);
  });

  it('never moves the watermark back when idleness would put it behind stream time', () => {
    const wall = T0; // wall clock behind the event times (clock skew)
    const c = new PartitionClock(spec, 0, 1, fresh, wall - 100);
    c.observe(T0 + 10 * MIN, wall - 100);
    assert.equal(c.advanceIdle(wall, true), false);
    assert.equal(c.watermark(), T0 + 10 * MIN);
  });
});
