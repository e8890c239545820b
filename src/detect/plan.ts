/**
 * The rule plan: what the engine runs. A rule file in rules/ carries its ES|QL text (the
 * contract) and this plan; the engine reads fields only through the names written here.
 */
export interface ThreatSpec {
  framework: string;
  tactic: { id: string; name: string; reference: string };
  technique: Array<{ id: string; name: string; reference: string }>;
}

export type FilterClause =
  | { field: string; op: '=='; value: string | number }
  | { field: string; op: 'in'; values: Array<string | number> };

export type AggregateFn = 'count' | 'count_distinct' | 'values';

export interface AggregateSpec {
  /** Output column, as the query names it (e.g. "Esql.document_count"). */
  name: string;
  fn: AggregateFn;
  /** Source field for count_distinct and values, as the query names it. */
  field?: string;
}

export type ComparisonOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

export interface ConditionClause {
  aggregate: string;
  op: ComparisonOp;
  value: number;
}

export interface RulePlan {
  id: string;
  name: string;
  version: number;
  severity: string;
  riskScore: number;
  description?: string;
  threat: ThreatSpec[];
  /** Short tag in Redis keys; changes whenever the plan's state becomes incompatible. */
  stateKey: string;
  window: { sizeMs: number; hopMs: number };
  /** Conjunction of clauses on each event (the query's WHERE before STATS). */
  filter: FilterClause[];
  /** STATS ... BY fields; a multi-valued field puts the event in one group per distinct value. */
  groupBy: string[];
  aggregates: AggregateSpec[];
  /** Conjunction of clauses on the aggregates (the WHERE after STATS). */
  condition: ConditionClause[];
  /** count_distinct is exact up to this many distinct values per pane, then a HyperLogLog. */
  distinctExactThreshold: number;
  /** The ES|QL text, for display and for the front end. */
  esql?: string;
}
