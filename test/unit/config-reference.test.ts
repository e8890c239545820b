import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configReference, withReference } from '../../src/config/reference';
import { packageRoot } from '../../src/util/package-root';

describe('README configuration reference', () => {
  it('lists every key of the schema', () => {
    const ref = configReference();
    for (const key of ['kafka.brokers', 'detector.latenessMs', 'router.alignMs', 'alerts.suppressionMs', 'redis.url']) {
      assert.match(ref, new RegExp(`\\| \`${key.replace('.', '\\.')}\` \\|`));
    }
    assert.match(ref, /\| `redis\.url` \| `KADE_REDIS_URL` \| redis-url \| \(secret\) \|/);
  });

  it('is up to date in README.md (run `npm run docs:config` after changing the schema)', () => {
    const readme = readFileSync(path.join(packageRoot(), 'README.md'), 'utf8');
    assert.equal(withReference(readme), readme);
  });
});
