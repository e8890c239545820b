import { Message } from 'kafkajs';
import { CompiledPlan } from '../detect/compiled-plan';
import { groupKafkaKey } from '../detect/group-id';
import { SourceRecord, deadLetter, headerString } from './dead-letter';
import { BadInputError } from './errors';
import { KeyedCodec } from './keyed-codec';
import { TimeField, decodeRawMessage } from './normalize';

export interface RouteOptions {
  plans: CompiledPlan[];
  codec: KeyedCodec;
  timeField: TimeField;
  namespaceHeader: string;
  defaultNamespace: string;
  maxMessageBytes: number;
  maxJsonDepth?: number;
}

export interface RouteResult {
  keyed: Message[];
  dlq: Message[];
  /** Events routed to at least one rule. */
  routed: number;
  /** Events no rule's filter kept. */
  filtered: number;
  /** Events (or unreadable records) sent to the dead-letter topic. */
  deadLettered: number;
  /** Max event time of the decoded events (ms), or null if none decoded. */
  maxEventTime: number | null;
}

/**
 * The router's pure step: decode -> normalize -> each rule's filter (the WHERE push-down) -> one
 * keyed record per group the event belongs to. Bad input becomes dead letters, never an exception.
 */
export function routeRecords(records: SourceRecord[], opts: RouteOptions): RouteResult {
  const out: RouteResult = { keyed: [], dlq: [], routed: 0, filtered: 0, deadLettered: 0, maxEventTime: null };
  for (const src of records) {
    const namespace = headerString(src.headers, opts.namespaceHeader) ?? opts.defaultNamespace;
    let decoded;
    try {
      decoded = decodeRawMessage(src.value, { timeField: opts.timeField, namespace, maxMessageBytes: opts.maxMessageBytes, maxJsonDepth: opts.maxJsonDepth });
    } catch (err) {
      if (!(err instanceof BadInputError)) throw err;
      out.dlq.push(deadLetter(src, err, null));
      out.deadLettered++;
      continue;
    }
    for (const f of decoded.failures) {
      out.dlq.push(deadLetter(src, f.error, f.index));
      out.deadLettered++;
    }
    if (decoded.events.length === 0 && decoded.failures.length === 0) {
      out.dlq.push(deadLetter(src, new BadInputError('empty-list', 'record holds no audit event'), null));
      out.deadLettered++;
    }
    for (const ev of decoded.events) {
      if (out.maxEventTime === null || ev.eventTime > out.maxEventTime) out.maxEventTime = ev.eventTime;
      const mark = out.keyed.length;
      try {
        for (const plan of opts.plans) {
          if (!plan.accepts(ev.record)) continue;
          const projected = plan.project(ev.record);
          for (const group of plan.groupsOf(ev.record)) {
            out.keyed.push({
              key: Buffer.from(groupKafkaKey(group)),
              value: opts.codec.encode({ rule: plan.id, group, eventTime: ev.eventTime, record: projected }),
            });
          }
        }
      } catch (err) {
        // Normalization should have caught it; a value Avro cannot hold is still bad input.
        out.keyed.length = mark;
        out.dlq.push(deadLetter(src, new BadInputError('unencodable', `event cannot be encoded: ${(err as Error).message}`), ev.index));
        out.deadLettered++;
        continue;
      }
      if (out.keyed.length > mark) out.routed++;
      else out.filtered++;
    }
  }
  return out;
}
