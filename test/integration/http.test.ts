import assert from 'node:assert/strict';
import { startKade } from '../../src/main';
import { createLogger } from '../../src/ops/logger';
import { deleteTopics, isolatedConfig, testKafka, waitFor } from '../helpers/kafka';
import { freePort } from '../helpers/ports';

describe('/live, /ready, /metrics, /version', function () {
  this.timeout(60_000);

  it('serves the probes and Prometheus metrics of a running kade', async () => {
    const port = await freePort();
    const config = isolatedConfig('http', { 'http.port': port });
    const running = await startKade(config, createLogger('silent'));
    const get = async (p: string): Promise<{ status: number; body: string }> => {
      const r = await fetch(`http://127.0.0.1:${port}${p}`);
      return { status: r.status, body: await r.text() };
    };
    try {
      assert.equal((await get('/live')).status, 200);
      await waitFor('ready', async () => (await get('/ready')).status === 200, 30_000, 200);
      const metrics = await get('/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /# TYPE kade_events_total counter/);
      assert.match(metrics.body, /# TYPE kade_batch_duration_seconds histogram/);
      assert.match((await get('/version')).body, /"version":"\d+\.\d+\.\d+"/);
      assert.equal((await get('/nope')).status, 404);
    } finally {
      await running.stop();
      await deleteTopics(testKafka(), config);
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/live`), 'the server is closed on stop');
  });
});
