/**
 * Exact read_committed for kafkajs 2.2.4 consumers.
 *
 * kafkajs drops the records of aborted transactions in `src/consumer/filterAbortedMessages.js`,
 * and that filter lets some through:
 * - it walks the fetch response's aborted-transaction list in the order the broker sent it. The
 *   broker lists them in the order they ended (its transaction index), not the order they began.
 *   When a transaction that began later aborted first, the earlier one's records up to that point
 *   pass;
 * - it starts at most one aborted transaction per record. When two began before the fetch offset,
 *   the second's first record passes.
 * Kade's router writes the keyed topic from several transactional producers at once (one per raw
 * partition). When a router dies mid-transaction, the new owner aborts its open transactions, one
 * per partition it had in flight, and those end in whatever order. The keyed topic then holds
 * interleaved aborted transactions, and the detector counted their records (the likely cause of
 * 787 extra keyed records in one CI run of the router SIGKILL fault test).
 *
 * The replacement does what the Java consumer does (Fetcher/CompletedFetch): the aborted list is
 * ordered by first offset, every transaction whose first offset is at or below a record's offset
 * starts before that record is judged, and a producer's abort marker ends its aborted span.
 *
 * kafkajs binds the filter when it loads, so the replacement has to be in the module cache first:
 * import this module before anything imports kafkajs (kade's entry points and src/ingest/kafka.ts
 * do). `readCommittedIsExact()` checks the loaded kafkajs, and createKafka refuses to build a
 * client when it is not, rather than run with silently wrong counts.
 */
import Module = require('node:module');
// Also before kafkajs: the cheaper Produce request encoder (byte-identical; see the module).
import './kafkajs-fast-produce';

interface FetchedMessage {
  offset: string;
  key: Buffer | null;
  isControlRecord?: boolean;
  batchContext: { producerId: string; inTransaction: boolean };
}

interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

/** A control record's key: version (int16), type (int16; 0 = abort, 1 = commit). */
function isAbortMarker(m: FetchedMessage): boolean {
  return m.isControlRecord === true && m.key !== null && m.key.length >= 4 && m.key.readInt16BE(2) === 0;
}

/** The records of a fetch, minus those of the aborted transactions it lists (control records stay). */
export function filterAbortedMessages(
  { messages, abortedTransactions }: { messages: FetchedMessage[]; abortedTransactions?: AbortedTransaction[] },
): FetchedMessage[] {
  if (abortedTransactions === undefined || abortedTransactions.length === 0) return messages;
  // Only fetches that overlap an aborted transaction get here: BigInt is affordable.
  const pending = abortedTransactions
    .map((t) => ({ producerId: String(t.producerId), firstOffset: BigInt(t.firstOffset) }))
    .sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  const aborting = new Set<string>();
  let next = 0;
  return messages.filter((m) => {
    const offset = BigInt(m.offset);
    while (next < pending.length && pending[next].firstOffset <= offset) aborting.add(pending[next++].producerId);
    const producerId = String(m.batchContext.producerId);
    if (m.isControlRecord === true) {
      if (isAbortMarker(m)) aborting.delete(producerId);
      return true;
    }
    return !(m.batchContext.inTransaction && aborting.has(producerId));
  });
}

const FILTER_MODULE = 'kafkajs/src/consumer/filterAbortedMessages';
const BATCH_MODULE = 'kafkajs/src/consumer/batch';

/** Puts the exact filter where kafkajs will load its own, unless kafkajs' batch module is loaded. */
function install(): void {
  const filename = require.resolve(FILTER_MODULE);
  if (require.cache[require.resolve(BATCH_MODULE)] !== undefined) return; // too late: the check reports it
  const m = new Module(filename);
  m.filename = filename;
  m.loaded = true;
  m.exports = filterAbortedMessages;
  require.cache[filename] = m;
}

install();

let checked: boolean | undefined;

/**
 * Whether the kafkajs in this process drops aborted records exactly: a fetch holding two
 * interleaved aborted transactions, listed in the order they ended, must yield nothing.
 */
export function readCommittedIsExact(): boolean {
  if (checked !== undefined) return checked;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Batch = require(BATCH_MODULE) as new (topic: string, fetchedOffset: string, data: unknown) => { messages: unknown[] };
  const rec = (offset: number, producerId: string, control: 'abort' | null): FetchedMessage => ({
    offset: String(offset),
    key: control === null ? Buffer.from('k') : Buffer.from([0, 0, 0, 0]),
    isControlRecord: control !== null,
    batchContext: { producerId, inTransaction: true },
  });
  const batch = new Batch('check', '0', {
    partition: 0,
    highWatermark: '6',
    // B began after A and aborted first: the broker lists B first.
    abortedTransactions: [{ producerId: '2', firstOffset: '1' }, { producerId: '1', firstOffset: '0' }],
    messages: [rec(0, '1', null), rec(1, '2', null), rec(2, '1', null), rec(3, '2', null), rec(4, '2', 'abort'), rec(5, '1', 'abort')],
  });
  checked = batch.messages.length === 0;
  return checked;
}

/** Throws unless readCommittedIsExact(): kade does not consume with a filter that leaks. */
export function assertReadCommittedIsExact(): void {
  if (!readCommittedIsExact()) {
    throw new Error('kafkajs was loaded before kade could replace its aborted-transaction filter, so read_committed '
      + 'consumers would see records of aborted transactions; import src/ingest/kafkajs-read-committed before kafkajs');
  }
}
