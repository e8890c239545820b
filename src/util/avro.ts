import { readFileSync } from 'node:fs';
import path from 'node:path';
import avro from 'avsc';
import { packageRoot } from './package-root';

const registry: Record<string, avro.Type> = {};

/** Loads an Avro type from schemas/ (the only copy of each schema), resolving named references. */
export function avroType(file: string): avro.Type {
  const full = path.join(packageRoot(), 'schemas', file);
  const schema = JSON.parse(readFileSync(full, 'utf8')) as avro.Schema;
  const name = (schema as { namespace?: string; name?: string }).name;
  const ns = (schema as { namespace?: string }).namespace;
  const qualified = ns !== undefined && name !== undefined ? `${ns}.${name}` : name;
  if (qualified !== undefined && registry[qualified] !== undefined) return registry[qualified];
  return avro.Type.forSchema(schema, { registry });
}
