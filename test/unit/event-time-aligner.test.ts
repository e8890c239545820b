import assert from 'node:assert/strict';
import { EventTimeAligner } from '../../src/ingest/event-time-aligner';

const MIN = 60_000;

describe('event-time alignment of input partitions', () => {
  it('pauses a partition that runs ahead of the slowest backlogged one, and resumes it later', () => {
    const a = new EventTimeAligner(MIN);
    assert.deepEqual(a.update(0, 10 * MIN, 500), { pause: [], resume: [] });
    assert.deepEqual(a.update(1, 10 * MIN + 30_000, 500), { pause: [], resume: [] });
    assert.deepEqual(a.update(1, 11 * MIN + 1, 400), { pause: [1], resume: [] }, 'more than a minute ahead');
    assert.deepEqual(a.update(0, 10 * MIN + 20_000, 300), { pause: [], resume: [] }, 'still more than half a minute ahead');
    assert.deepEqual(a.update(0, 10 * MIN + 31_000, 200), { pause: [], resume: [1] }, 'within half: resumed');
  });

  it('never pauses the slowest partition, so progress is always possible', () => {
    const a = new EventTimeAligner(MIN);
    a.update(0, 0, 10);
    a.update(1, 100 * MIN, 10);
    a.update(2, 200 * MIN, 10);
    const d = a.update(0, 1, 9);
    assert.ok(!d.pause.includes(0));
  });

  it('ignores caught-up partitions when finding the slowest one, and resumes all when none lags', () => {
    const a = new EventTimeAligner(MIN);
    a.update(0, 0, 0); // caught up: waits for new data, must not hold others back
    assert.deepEqual(a.update(1, 30 * MIN, 100), { pause: [], resume: [] });
    assert.deepEqual(a.update(2, 10 * MIN, 100), { pause: [1], resume: [] });
    assert.deepEqual(a.update(2, 11 * MIN, 0), { pause: [], resume: [1] }, 'the only backlog left is the paused one');
  });

  it('reset reports what was paused', () => {
    const a = new EventTimeAligner(MIN);
    a.update(0, 0, 10);
    a.update(1, 5 * MIN, 10);
    assert.deepEqual(a.reset(), [1]);
    assert.deepEqual(a.reset(), []);
  });
});
