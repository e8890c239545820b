/**
 * How a count_distinct value is stored in Redis when the rule's values() are re-read from the
 * keyed topic (CompiledPlan.valuesFromTopic): a value of at most 8 UTF-8 bytes as itself, a
 * longer one as a 64-bit hash of its UTF-8 bytes in 11 base64url characters. A stored form is
 * then at most 11 bytes, so a request URI (70 bytes on average) costs 13 bytes of pane record
 * instead of 72, and the two forms never collide (8 bytes or fewer against exactly 11).
 *
 * Distinct counts are then counts of distinct hashes: two values with the same 64-bit hash count
 * once. By chance that is ~2^-64 per pair, far below what a HyperLogLog (or ES|QL's own HLL++,
 * which also counts 64-bit hashes below its precision threshold) gets wrong. The hash is not
 * keyed: values crafted to collide (2^32 work per pair) could make a window count fewer distinct
 * values than it holds (README, Guarantees).
 *
 * The hash: two 32-bit lanes of MurmurHash3-style mixing over the bytes, 4 at a time (little
 * endian; a 1-3 byte tail as one more block tagged with its length), finished with fmix32 and
 * cross-mixed. Stable forever (it is part of the state layout): changing it needs a
 * new STATE_LAYOUT.
 */

/** Longest value stored as itself, in UTF-8 bytes. */
export const RAW_MAX_BYTES = 8;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// Hash state (module-level: the hot loop allocates nothing): two lanes, and the bytes not yet
// mixed (little-endian, `pending` of them).
let h1 = 0;
let h2 = 0;
let word = 0;
let pending = 0;

/** Mixes one 32-bit little-endian block into both lanes (MurmurHash3's block step, twice). */
function mixWord(w: number): void {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h1 ^= Math.imul(k, 0x1b873593);
  h1 = (Math.imul((h1 << 13) | (h1 >>> 19), 5) + 0xe6546b64) | 0;
  let j = Math.imul(w, 0x85ebca77);
  j = (j << 13) | (j >>> 19);
  h2 ^= Math.imul(j, 0xc2b2ae3d);
  h2 = (Math.imul((h2 << 17) | (h2 >>> 15), 9) + 0x52dce729) | 0;
}

function pushByte(b: number): void {
  word |= b << (pending * 8);
  if (++pending === 4) {
    mixWord(word);
    word = 0;
    pending = 0;
  }
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The 11 characters of the 64 bits (h1, h2) after the tail and the length are mixed in. */
function finish(length: number): string {
  if (pending > 0) {
    // The tail (1-3 bytes), as a block of its own with its byte count in the top byte.
    mixWord(word | (pending << 24));
    word = 0;
    pending = 0;
  }
  h1 ^= length;
  h2 ^= Math.imul(length, 0x9e3779b1);
  const a = fmix((h1 + h2) | 0) >>> 0;
  const b = fmix((h2 + Math.imul(a, 0x9e3779b1)) | 0) >>> 0;
  // 64 bits -> 11 base64url digits (the last one carries 4 bits).
  let out = '';
  let acc = a;
  for (let i = 0; i < 5; i++) { out += B64[acc & 63]; acc >>>= 6; }
  acc = (acc & 3) | ((b & 0x0f) << 2);
  out += B64[acc];
  acc = b >>> 4;
  for (let i = 0; i < 4; i++) { out += B64[acc & 63]; acc >>>= 6; }
  out += B64[acc & 15];
  return out;
}

function start(): void {
  h1 = 0x9747b28c;
  h2 = 0x2f6b5d31;
  word = 0;
  pending = 0;
}

/**
 * The stored form of the UTF-8 bytes buf[startAt, end), without making a string of ASCII ones.
 * Bytes that are not ASCII go through their string, so invalid UTF-8 gets the form of what a
 * decoder reads (U+FFFD for each bad sequence), as on the path through decoded records.
 */
export function storedFormOfBytes(buf: Buffer, startAt: number, end: number): string {
  if (end - startAt <= RAW_MAX_BYTES) return buf.toString('utf8', startAt, end);
  start();
  let i = startAt;
  for (const last = end - 4; i <= last; i += 4) {
    const w = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    if ((w & 0x80808080) !== 0) return storedFormOf(buf.toString('utf8', startAt, end));
    mixWord(w);
  }
  for (; i < end; i++) {
    if (buf[i] >= 0x80) return storedFormOf(buf.toString('utf8', startAt, end));
    pushByte(buf[i]);
  }
  return finish(end - startAt);
}

/**
 * The stored form of a string: the same as storedFormOfBytes of its UTF-8 encoding (as
 * Buffer.from writes it: a lone surrogate is U+FFFD), computed without encoding it.
 */
export function storedFormOf(s: string): string {
  // Short ASCII strings (verbs, decisions, most resources) are stored as themselves.
  if (s.length <= RAW_MAX_BYTES && utf8Length(s) <= RAW_MAX_BYTES) return hasSurrogate(s) ? Buffer.from(s, 'utf8').toString('utf8') : s;
  start();
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      pushByte(c);
      n += 1;
    } else if (c < 0x800) {
      pushByte(0xc0 | (c >> 6));
      pushByte(0x80 | (c & 63));
      n += 2;
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          pushByte(0xf0 | (c >> 18));
          pushByte(0x80 | ((c >> 12) & 63));
          pushByte(0x80 | ((c >> 6) & 63));
          pushByte(0x80 | (c & 63));
          n += 4;
          continue;
        }
        c = 0xfffd;
      }
      pushByte(0xe0 | (c >> 12));
      pushByte(0x80 | ((c >> 6) & 63));
      pushByte(0x80 | (c & 63));
      n += 3;
    }
  }
  return finish(n);
}

function hasSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return true;
  }
  return false;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
