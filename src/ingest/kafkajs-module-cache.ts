import Module = require('node:module');

/**
 * Puts `exports` in the module cache under a kafkajs file name, so that kafkajs' own `require` of
 * that file gets kade's replacement (kafkajs-read-committed, -fast-produce, -fast-fetch). Only
 * effective before the modules that require it are loaded; each installer checks that.
 */
export function putModule(filename: string, exports: unknown): void {
  const m = new Module(filename);
  m.filename = filename;
  m.loaded = true;
  m.exports = exports;
  require.cache[filename] = m;
}
