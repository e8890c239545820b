import assert from 'node:assert/strict';
import { RAW_MAX_BYTES, storedFormOf, storedFormOfBytes } from '../../src/detect/value-hash';
import { mulberry32 } from '../helpers/audit-generator';

describe('stored form of count_distinct values (value-hash)', () => {
  it('keeps values of up to 8 UTF-8 bytes as they are, hashes longer ones to 11 base64url characters', () => {
    for (const s of ['', 'get', 'forbid', 'configma', 'ü1234', '用户12']) {
      assert.ok(Buffer.byteLength(s) <= RAW_MAX_BYTES);
      assert.equal(storedFormOf(s), s);
      assert.equal(storedFormOfBytes(Buffer.from(s), 0, Buffer.byteLength(s)), s);
    }
    for (const s of ['configmaps', '用户123', '/api/v1/namespaces/default/pods']) {
      assert.match(storedFormOf(s), /^[A-Za-z0-9_-]{11}$/);
    }
  });

  it('gives the same form from a string and from its UTF-8 bytes (any offset), surrogates included', () => {
    const rnd = mulberry32(99);
    const alphabet = ['a', '/', 'é', '用', '😀', '\ud800', '\udc00', 'Z', '0', ' '];
    for (let i = 0; i < 5000; i++) {
      let s = '';
      const n = Math.floor(rnd() * 30);
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const bytes = Buffer.concat([Buffer.from('pre'), Buffer.from(s, 'utf8'), Buffer.from('post')]);
      const len = Buffer.byteLength(s, 'utf8');
      assert.equal(storedFormOf(s), storedFormOfBytes(bytes, 3, 3 + len), JSON.stringify(s));
    }
    // Invalid UTF-8 (a corrupted record): the form of what a decoder reads from it.
    const bad = Buffer.from([0x2f, 0x61, 0xff, 0x62, 0xc3, 0x2f, 0x61, 0x62, 0x63, 0x64, 0xe2, 0x82]);
    assert.equal(storedFormOfBytes(bad, 0, bad.length), storedFormOf(bad.toString('utf8')));
    assert.equal(storedFormOfBytes(bad, 0, 6), bad.toString('utf8', 0, 6));
  });

  it('maps 200,000 distinct URIs (and near-identical ones) to 200,000 distinct forms, deterministically', () => {
    const seen = new Map<string, string>();
    for (let i = 0; i < 200_000; i++) {
      const uri = `/api/v1/namespaces/ns-${i % 97}/pods/pod-${i}`;
      const f = storedFormOf(uri);
      assert.equal(seen.get(f), undefined, `${uri} and ${seen.get(f)} collide`);
      seen.set(f, uri);
    }
    // One bit apart, and the same bytes in another order.
    assert.notEqual(storedFormOf('/api/v1/secrets/a'), storedFormOf('/api/v1/secrets/b'));
    assert.notEqual(storedFormOf('/api/v1/ab'), storedFormOf('/api/v1/ba'));
    assert.notEqual(storedFormOf('x'.repeat(9)), storedFormOf('x'.repeat(10)));
    // Stable across processes and versions: part of the state layout.
    assert.equal(storedFormOf('/api/v1/namespaces/default/secrets'), storedFormOf('/api/v1/namespaces/default/secrets'));
  });
});
