import type avro from 'avsc';
import type { CompiledPlan } from '../detect/compiled-plan';
import { FieldPath } from '../detect/fields';
import { avroType } from '../util/avro';
import { BadInputError } from './errors';
import { MAX_VALUE_CHARS, capValue } from '../detect/cap-value';
import { storedFormOf, storedFormOfBytes } from '../detect/value-hash';

/**
 * Reads keyed records (schemas/KeyedAuditRecord.avsc) straight from their Avro bytes, for the
 * detector's hot loop: one pass reads the header (rule, eventTime, where the group starts),
 * validates the rest as avsc's fromBuffer would, and hands the values of the rule's tracked fields
 * to a sink, without building the record. Decoding every record into objects with avsc (nested
 * records, every null, every string) was the largest single cost of the detector's own work
 * (bench/detect-micro.ts).
 *
 * Programs are compiled from the avsc types, so the scanner follows the schema files; a type it
 * does not read (none in kade's schemas today) makes the constructor throw, at start-up.
 */

/** Receives a tracked field's values (string bytes as [start, end) of buf, or an int). */
export interface ValueSink {
  str(field: number, buf: Buffer, start: number, end: number): void;
  int(field: number, value: number): void;
}

/** Position in the record being read; one per scanner, reused (no allocation per record). */
class Cursor {
  buf: Buffer = EMPTY;
  pos = 0;
  sink: ValueSink | null = null;
}

const EMPTY = Buffer.alloc(0);

type Step = (c: Cursor) => void;

function truncated(): never {
  throw new BadInputError('invalid-avro', 'keyed record is not a KeyedAuditRecord: truncated buffer');
}

/** Avro long (zig-zag varint); exact up to 2^53 like avsc. */
function readLong(c: Cursor): number {
  const buf = c.buf;
  let pos = c.pos;
  if (pos >= buf.length) truncated();
  let b = buf[pos++];
  let n = b & 0x7f;
  if (b >= 0x80) {
    let f = 128;
    do {
      if (pos >= buf.length) truncated();
      b = buf[pos++];
      n += (b & 0x7f) * f;
      f *= 128;
      if (f > 2 ** 63) throw new BadInputError('invalid-avro', 'keyed record is not a KeyedAuditRecord: varint too long');
    } while (b >= 0x80);
  }
  c.pos = pos;
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** Length of a string or bytes value, checked against the buffer. */
function readLength(c: Cursor): number {
  const len = readLong(c);
  if (len < 0 || c.pos + len > c.buf.length) truncated();
  return len;
}

function skipBytes(c: Cursor): void {
  // Not `c.pos += readLength(c)`: that adds to the position from before the length was read.
  const len = readLength(c);
  c.pos += len;
}

function skipFixed(size: number): Step {
  return (c) => {
    if (c.pos + size > c.buf.length) truncated();
    c.pos += size;
  };
}

function noop(): void {
  // null: no bytes
}

/** Array or map blocks: count (negative: followed by the block's byte size), then the items. */
function blocks(item: Step): Step {
  return (c) => {
    for (;;) {
      let n = readLong(c);
      if (n === 0) return;
      if (n < 0) {
        n = -n;
        readLong(c);
      }
      for (let i = 0; i < n; i++) item(c);
    }
  };
}

/** What a node of the type tree must hand to the sink: tracked field indexes by path. */
interface Capture {
  /** Field indexes whose values are this node's values. */
  here: number[];
  children: Map<string, Capture>;
  /** Map entries whose key a tracked field accepts (the first accepted entry only, like FieldAccessor.readRaw). */
  mapKeys: Array<{ field: number; accepts: (key: string) => boolean }>;
}

function captureTree(fields: Array<{ index: number; path: FieldPath }>): Capture {
  const root: Capture = { here: [], children: new Map(), mapKeys: [] };
  for (const f of fields) {
    let node = root;
    for (const name of f.path.fields) {
      let next = node.children.get(name);
      if (next === undefined) node.children.set(name, (next = { here: [], children: new Map(), mapKeys: [] }));
      node = next;
    }
    if (f.path.mapKey !== undefined) node.mapKeys.push({ field: f.index, accepts: f.path.mapKey });
    else node.here.push(f.index);
  }
  return root;
}

function typeName(t: avro.Type): string {
  return (t as unknown as { typeName: string }).typeName;
}

/** Compiles a step that reads one value of type t, handing captured values to the sink. */
function compile(t: avro.Type, cap: Capture | null): Step {
  const name = typeName(t);
  const here = cap?.here ?? [];
  switch (name) {
    case 'null':
      return noop;
    case 'boolean':
      return skipFixed(1);
    case 'float':
      return skipFixed(4);
    case 'double':
      return skipFixed(8);
    case 'int':
    case 'long':
    case 'enum':
      if (here.length === 0) return (c) => { readLong(c); };
      return (c) => {
        const v = readLong(c);
        const sink = c.sink;
        if (sink !== null) for (const f of here) sink.int(f, v);
      };
    case 'fixed':
      return skipFixed((t as unknown as { size: number }).size);
    case 'string':
    case 'bytes':
      if (here.length === 0) return skipBytes;
      return (c) => {
        const len = readLength(c);
        const start = c.pos;
        c.pos += len;
        const sink = c.sink;
        if (sink !== null) for (const f of here) sink.str(f, c.buf, start, start + len);
      };
    case 'record':
    case 'error': {
      const steps = (t as unknown as { fields: Array<{ name: string; type: avro.Type }> }).fields
        .map((f) => compile(f.type, cap?.children.get(f.name) ?? null));
      return (c) => { for (let i = 0; i < steps.length; i++) steps[i](c); };
    }
    case 'union:unwrapped':
    case 'union:wrapped': {
      const branches = (t as unknown as { types: avro.Type[] }).types.map((b) => compile(b, cap));
      return (c) => {
        const i = readLong(c);
        if (i < 0 || i >= branches.length || !Number.isInteger(i)) {
          throw new BadInputError('invalid-avro', `keyed record is not a KeyedAuditRecord: invalid union index ${i}`);
        }
        branches[i](c);
      };
    }
    case 'array':
      return blocks(compile((t as unknown as { itemsType: avro.Type }).itemsType, cap));
    case 'map': {
      const values = (t as unknown as { valuesType: avro.Type }).valuesType;
      const skip = compile(values, null);
      const keys = cap?.mapKeys ?? [];
      if (keys.length === 0) return blocks((c) => { skipBytes(c); skip(c); });
      const read = keys.map((k) => ({ ...k, step: compile(values, { here: [k.field], children: new Map(), mapKeys: [] }) }));
      // Annotation keys repeat from record to record: the verdict per key is cached.
      const verdicts = new Map<string, number>();
      let taken = 0;
      const loop = blocks((c) => {
        const len = readLength(c);
        const key = c.buf.toString('utf8', c.pos, c.pos + len);
        c.pos += len;
        let which = verdicts.get(key);
        if (which === undefined) {
          which = read.findIndex((k) => k.accepts(key));
          if (verdicts.size < 1000) verdicts.set(key, which);
        }
        if (which < 0 || (taken & (1 << which)) !== 0) skip(c);
        else {
          taken |= 1 << which;
          read[which].step(c);
        }
      });
      if (read.length > 30) throw new Error('keyed-scan: at most 30 fields may read one map');
      return (c) => {
        taken = 0;
        loop(c);
      };
    }
    default:
      throw new Error(`keyed-scan: Avro type ${name} is not supported`);
  }
}

export interface KeyedHeader {
  /** Index of the rule in the scanner's rule list, or -1 (then `rule` holds its id). */
  ruleIndex: number;
  rule: string;
  eventTime: number;
  /** Offset of the group array in the value. */
  groupPos: number;
}

interface Utf8Slicer {
  utf8Slice(start: number, end: number): string;
}

/** The values read from a batch's records: field index and value, appended record after record. */
export class CollectedValues implements ValueSink {
  readonly fields: number[] = [];
  readonly values: string[] = [];
  /** Per field index, 1 if its values are collected in short form (set by the scanner per rule). */
  hashed: Uint8Array = NONE_HASHED;

  get length(): number {
    return this.fields.length;
  }

  /** A string value: its UTF-8 bytes as a string, capped like capValue. */
  str(field: number, buf: Buffer, start: number, end: number): void {
    this.fields.push(field);
    // A value of at most MAX_VALUE_CHARS bytes has at most as many characters: never capped.
    if (this.hashed[field] === 1 && end - start <= MAX_VALUE_CHARS) {
      // Straight from the bytes, without a string (the form of their string, see value-hash.ts).
      this.values.push(storedFormOfBytes(buf, start, end));
      return;
    }
    // utf8Slice: Buffer#toString without its argument checks (the range is checked already).
    const v = (buf as unknown as Utf8Slicer).utf8Slice(start, end);
    const capped = end - start <= MAX_VALUE_CHARS ? v : capValue(v);
    this.values.push(this.hashed[field] === 1 ? storedFormOf(capped) : capped);
  }

  int(field: number, value: number): void {
    this.fields.push(field);
    this.values.push(this.hashed[field] === 1 ? storedFormOf(String(value)) : String(value));
  }

  /** Drops what was appended after `length` (a record that turned out malformed). */
  truncate(length: number): void {
    this.fields.length = length;
    this.values.length = length;
  }
}

const NONE_HASHED = new Uint8Array(0);

/**
 * A rule the scanner reads records of: its id and where the fields its pane records store live
 * (hashed: collected in short form, value-hash.ts).
 */
export interface ScannedRule {
  id: string;
  fields: Array<{ index: number; path: FieldPath; hashed?: boolean }>;
}

/**
 * Reads keyed records of the given rules. A record of another rule is validated and its header
 * read, nothing collected.
 */
export class KeyedScanner {
  private readonly cursor = new Cursor();
  private readonly ruleIds: string[];
  private readonly ruleBytes: Buffer[];
  private readonly collect: Step[];
  private readonly hashed: Uint8Array[];
  private readonly skipRecord: Step;
  private readonly skipGroup: Step;
  private readonly groupType: avro.Type;
  private readonly header: KeyedHeader = { ruleIndex: -1, rule: '', eventTime: 0, groupPos: 0 };

  /** The scanner of these rules' keyed records (the fields their pane records store, by path). */
  static forPlans(plans: CompiledPlan[]): KeyedScanner {
    return new KeyedScanner(plans.map((p) => ({
      id: p.id, fields: p.storedFields.map((f) => ({ index: f.index, path: f.accessor.path, hashed: f.hashed })),
    })));
  }

  /** Throws if a field has no path or the schema holds a type the scanner does not read. */
  constructor(rules: ScannedRule[]) {
    this.ruleIds = rules.map((r) => r.id);
    this.ruleBytes = rules.map((r) => Buffer.from(r.id, 'utf8'));
    avroType('AuditRecord.avsc');
    const keyed = avroType('KeyedAuditRecord.avsc') as unknown as { fields: Array<{ name: string; type: avro.Type }> };
    const names = keyed.fields.map((f) => f.name).join(',');
    if (names !== 'rule,group,eventTime,record') throw new Error(`keyed-scan: KeyedAuditRecord fields changed (${names})`);
    this.groupType = keyed.fields[1].type;
    this.skipGroup = compile(this.groupType, null);
    this.skipRecord = compile(keyed.fields[3].type, null);
    this.collect = rules.map((r) => compile(keyed.fields[3].type, captureTree(r.fields)));
    this.hashed = rules.map((r) => {
      const h = new Uint8Array(Math.max(0, ...r.fields.map((f) => f.index + 1)));
      for (const f of r.fields) if (f.hashed === true) h[f.index] = 1;
      return h;
    });
  }

  /**
   * Reads one value: the header (returned; the object is reused by the next call) and, for a
   * rule of the scanner, the tracked fields' values into `into`. Validates the whole value (no
   * truncation, valid union indexes, no trailing bytes): a malformed value throws
   * BadInputError('invalid-avro') and leaves `into` as it was.
   */
  read(buf: Buffer, into: CollectedValues): KeyedHeader {
    const c = this.cursor;
    const h = this.header;
    const mark = into.length;
    c.buf = buf;
    c.pos = 0;
    c.sink = null;
    try {
      const len = readLength(c);
      const start = c.pos;
      c.pos += len;
      h.ruleIndex = -1;
      for (let i = 0; i < this.ruleBytes.length; i++) {
        const rb = this.ruleBytes[i];
        if (rb.length === len && buf.compare(rb, 0, len, start, start + len) === 0) {
          h.ruleIndex = i;
          break;
        }
      }
      h.rule = h.ruleIndex >= 0 ? this.ruleIds[h.ruleIndex] : buf.toString('utf8', start, start + len);
      h.groupPos = c.pos;
      this.skipGroup(c);
      h.eventTime = readLong(c);
      if (h.ruleIndex >= 0) {
        c.sink = into;
        into.hashed = this.hashed[h.ruleIndex];
        this.collect[h.ruleIndex](c);
      } else {
        this.skipRecord(c);
      }
      if (c.pos !== buf.length) throw new BadInputError('invalid-avro', 'keyed record is not a KeyedAuditRecord: trailing data');
      return h;
    } catch (err) {
      into.truncate(mark);
      throw err;
    } finally {
      c.buf = EMPTY;
      c.sink = null;
    }
  }

  /** The group key array of a value whose header was read (decoded by avsc). */
  group(buf: Buffer, groupPos: number): Array<string | null> {
    return (this.groupType as unknown as { decode(b: Buffer, pos: number): { value: Array<string | null>; offset: number } }).decode(buf, groupPos).value;
  }
}
