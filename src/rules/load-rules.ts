import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { CompiledPlan } from '../detect/compiled-plan';
import { RulePlan } from '../detect/plan';
import { packageRoot } from '../util/package-root';

export interface RuleFile extends RulePlan {
  /** ES|QL text file beside the rule, the contract the plan implements. */
  esqlFile?: string;
}

export function defaultRulesDir(): string {
  return path.join(packageRoot(), 'rules');
}

/** Loads every *.rule.json of a folder, validates it and compiles its plan. */
export function loadRules(dir: string): CompiledPlan[] {
  const folder = dir.length > 0 ? dir : defaultRulesDir();
  if (!existsSync(folder)) throw new Error(`rules.dir: folder ${folder} does not exist`);
  const files = readdirSync(folder).filter((f) => f.endsWith('.rule.json')).sort();
  if (files.length === 0) throw new Error(`rules.dir: no *.rule.json in ${folder}`);
  const plans = files.map((f) => loadRuleFile(path.join(folder, f)));
  const ids = new Set<string>();
  for (const p of plans) {
    if (ids.has(p.id)) throw new Error(`rule id ${p.id} is defined twice in ${folder}`);
    ids.add(p.id);
  }
  return plans;
}

export function loadRuleFile(file: string): CompiledPlan {
  let rule: RuleFile;
  try {
    rule = JSON.parse(readFileSync(file, 'utf8')) as RuleFile;
  } catch (err) {
    throw new Error(`rule ${file}: ${(err as Error).message}`);
  }
  for (const key of ['id', 'name', 'stateKey', 'severity'] as const) {
    if (typeof rule[key] !== 'string' || rule[key].length === 0) throw new Error(`rule ${file}: "${key}" must be a non-empty string`);
  }
  for (const key of ['version', 'riskScore', 'distinctExactThreshold'] as const) {
    if (!Number.isInteger(rule[key])) throw new Error(`rule ${file}: "${key}" must be an integer`);
  }
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(rule.stateKey)) throw new Error(`rule ${file}: "stateKey" must be 1-32 of [A-Za-z0-9_-]`);
  for (const key of ['filter', 'groupBy', 'aggregates', 'condition', 'threat'] as const) {
    if (!Array.isArray(rule[key])) throw new Error(`rule ${file}: "${key}" must be an array`);
  }
  if (rule.esqlFile !== undefined) rule.esql = readFileSync(path.join(path.dirname(file), rule.esqlFile), 'utf8');
  try {
    return new CompiledPlan(rule);
  } catch (err) {
    throw new Error(`rule ${file}: ${(err as Error).message}`);
  }
}
