import assert from 'node:assert/strict';
import { lastWindowEndOfPane, paneStart, panesOfWindow, validateWindowSpec, windowEndsOfPane } from '../../src/window/panes';

const MIN = 60_000;
const spec = { sizeMs: 6 * MIN, hopMs: MIN };

describe('pane and window arithmetic', () => {
  it('puts an event exactly on a minute boundary in the pane that starts there', () => {
    const t = Date.UTC(2026, 0, 5, 10, 7, 0);
    assert.equal(paneStart(t, MIN), t);
    assert.equal(paneStart(t - 1, MIN), t - MIN);
    assert.equal(paneStart(t + MIN - 1, MIN), t);
  });

  it('floors negative times (before the epoch) to the pane below', () => {
    assert.equal(paneStart(-1, MIN), -MIN);
    assert.equal(paneStart(-MIN, MIN), -MIN);
  });

  it('lists the six windows [t-6m, t) that hold a pane, oldest first', () => {
    const pane = Date.UTC(2026, 0, 5, 10, 7, 0);
    const ends = windowEndsOfPane(pane, spec);
    assert.equal(ends.length, 6);
    assert.equal(ends[0], pane + MIN);
    assert.equal(ends[5], pane + 6 * MIN);
    assert.equal(lastWindowEndOfPane(pane, spec), pane + 6 * MIN);
    // the window ending at the pane's own start does not hold it: [t-6m, t) excludes t
    assert.ok(!ends.includes(pane));
  });

  it('makes a window the union of its six panes', () => {
    const end = Date.UTC(2026, 0, 5, 10, 12, 0);
    const panes = panesOfWindow(end, spec);
    assert.deepEqual(panes, [6, 7, 8, 9, 10, 11].map((m) => Date.UTC(2026, 0, 5, 10, m, 0)));
    for (const p of panes) assert.ok(windowEndsOfPane(p, spec).includes(end));
  });

  it('rejects a size that is not a multiple of the hop', () => {
    assert.throws(() => validateWindowSpec({ sizeMs: 90_000, hopMs: MIN }), /multiple of the hop/);
    assert.throws(() => validateWindowSpec({ sizeMs: MIN, hopMs: 0 }), /hop/);
  });
});
