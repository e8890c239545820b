#!/usr/bin/env node
// First, before anything loads kafkajs: exact read_committed (src/ingest/kafkajs-read-committed.ts).
import './ingest/kafkajs-read-committed';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, KadeConfig, dlqTopic } from './config/load';
import { formatAlert } from './alerts/format-alert';
import { followAlerts } from './alerts/follow';
import { createKafka } from './ingest/kafka';
import { replay } from './ingest/replay';
import { ensureTopics } from './ingest/topics';
import { createLogger } from './ops/logger';
import { loadRules } from './rules/load-rules';
import { startKade } from './main';
import { runDemo } from './demo';
import { runDoctor } from './ops/doctor';
import { describeWithSources } from './config/sources';
import { connectionProblem, describeConnectionProblem } from './ops/connection-errors';

const USAGE = `kade: real-time detection on Kubernetes audit logs (Kafka + Redis)

Usage:
  kade run [--role router|detector|all]   run the pipeline until SIGTERM/SIGINT
  kade replay [--namespace NS] <file...>  produce audit events (JSON lines, arrays, EventLists; - for stdin) to the raw topic
  kade alerts [--json] [--from-beginning] follow the alerts topic
  kade topics [--check]                   create (or only check) the topics with the configured partitions
  kade rules                              list the loaded rules and their plans
  kade config                             print the effective configuration and where each value comes from (secrets redacted)
  kade doctor                             check Kafka, topics, Redis (version, eviction policy) and rules; exit 1 on problems
  kade demo                               run the bundled demo end to end

Options for every command:
  --config FILE   a config file (JSON), applied over defaults; KADE_* environment variables also apply
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', multiple: true },
      role: { type: 'string' },
      namespace: { type: 'string' },
      json: { type: 'boolean', default: false },
      'from-beginning': { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const overrides: Record<string, unknown> = {};
  if (values.role !== undefined) overrides.role = values.role;
  const { config } = loadConfig({ files: values.config, overrides });
  const log = createLogger(config.log.level);

  switch (command) {
    case 'run': return run(config, log);
    case 'replay': {
      if (rest.length === 0) throw new UsageError('replay needs at least one file (or - for stdin)');
      const n = await replay(createKafka(config, log, 'replay'), rest, {
        topic: config.topics.raw, namespace: values.namespace, namespaceHeader: config.router.namespaceHeader,
      });
      process.stdout.write(`replayed ${n} records into ${config.topics.raw}\n`);
      return 0;
    }
    case 'alerts': {
      const follower = await followAlerts(createKafka(config, log, 'alerts'), config.topics.alerts, {
        fromBeginning: values['from-beginning'],
        onAlert: (a) => {
          if (values.json) process.stdout.write(`${JSON.stringify(a.alert ?? a.ecs)}\n`);
          else process.stdout.write(`${a.alert !== undefined ? formatAlert(a.alert) : JSON.stringify(a.ecs, null, 2)}\n\n`);
        },
      });
      await waitForSignal();
      await follower.stop();
      return 0;
    }
    case 'topics': {
      const status = await ensureTopics(createKafka(config, log, 'admin'), config, !values.check);
      let bad = 0;
      for (const s of status) {
        const state = s.created ? 'created' : s.existing === null ? 'MISSING' : s.existing === s.numPartitions ? 'ok' : `has ${s.existing} partitions`;
        if (s.existing === null && !s.created) bad++;
        process.stdout.write(`${s.topic.padEnd(32)} partitions=${s.numPartitions}  ${state}\n`);
      }
      return bad > 0 ? 1 : 0;
    }
    case 'rules': {
      for (const plan of loadRules(config.rules.dir)) {
        const p = plan.plan;
        process.stdout.write(`${p.id}  v${p.version}  ${p.name}  [${p.severity}, risk ${p.riskScore}]\n`);
        process.stdout.write(`  window ${p.window.sizeMs / 1000}s hop ${p.window.hopMs / 1000}s; by ${p.groupBy.join(', ')}\n`);
        process.stdout.write(`  where ${p.filter.map((f) => (f.op === '==' ? `${f.field} == ${JSON.stringify(f.value)}` : `${f.field} in ${JSON.stringify(f.values)}`)).join(' and ')}\n`);
        for (const a of p.aggregates) process.stdout.write(`  ${a.name} = ${a.fn}(${a.field ?? ''})\n`);
        process.stdout.write(`  alert where ${p.condition.map((c) => `${c.aggregate} ${c.op} ${c.value}`).join(' and ')}\n`);
        process.stdout.write(`  prune panes at count >= ${plan.pruneAt || 'never'}; exact distinct up to ${p.distinctExactThreshold}\n`);
      }
      return 0;
    }
    case 'config':
      process.stdout.write(`${describeWithSources({ files: values.config, overrides })}\n`);
      process.stdout.write(`dead-letter topic: ${dlqTopic(config)}\n`);
      return 0;
    case 'doctor':
      return runDoctor(config, (line) => process.stdout.write(`${line}\n`));
    case 'demo':
      return runDemo(config, log);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

class UsageError extends Error {}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function run(config: KadeConfig, log: ReturnType<typeof createLogger>): Promise<number> {
  const running = await startKade(config, log);
  const signal = await waitForSignal();
  log.info({ signal }, 'shutting down');
  const bound = setTimeout(() => {
    log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  bound.unref();
  await running.stop();
  clearTimeout(bound);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`kade: ${(err as Error).message}\n`);
      if (err instanceof UsageError) process.stderr.write(USAGE);
      process.exitCode = 2;
      return;
    }
    // Wrong credentials or certificates are configuration, not a bug: one line, no stack.
    const p = connectionProblem(err);
    process.stderr.write(p !== null ? `kade: ${describeConnectionProblem(p)}\n` : `kade: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
