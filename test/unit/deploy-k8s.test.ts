import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import ts from 'typescript';
import { parse, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { KadeConfig, loadConfig } from '../../src/config/load';
import { schema } from '../../src/config/schema';
import { topicSpecs } from '../../src/ingest/topics';
import { Metrics } from '../../src/ops/metrics';

/**
 * k8s/: every manifest is validated against pinned schemas from npm (devDependencies, exact
 * versions): kubernetes-models (the Kubernetes OpenAPI, core and apps types up to about 1.32),
 * @kubernetes-models/keda (ScaledObject) and @kubernetes-models/prometheus-operator
 * (ServiceMonitor). Their JSON-schema validators check types, enums, patterns and required fields
 * but accept unknown fields, which the API server's strict field validation rejects; so every
 * field is also looked up in the same packages' TypeScript declarations (a typo like
 * `readinesProbe` fails here).
 *
 * Strimzi has no npm model package: KafkaTopic is checked against the small JSON schema below,
 * written from Strimzi's kafka.strimzi.io/v1beta2 KafkaTopic CRD (the fields kade uses).
 *
 * Then the files are checked against each other and against kade's own configuration schema,
 * and the Grafana dashboard against kade's metric names. No cluster, kubectl or kustomize here.
 */

const ROOT = path.resolve(__dirname, '../../..');
const K8S = path.join(ROOT, 'k8s');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Doc { file: string; obj: Obj }

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const file of readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()) {
    for (const d of parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'))) {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const obj = d.toJS() as Obj | null;
      if (obj !== null) docs.push({ file, obj });
    }
  }
  return docs;
}

/** Kind -> the model class (validate()) and its TypeScript declaration (field names). */
const MODELS: Record<string, { apiVersion: string; cls: new (data: Obj) => { validate(): void }; module: string; iface: string }> = {
  Namespace: { apiVersion: 'v1', cls: Namespace as never, module: 'kubernetes-models/v1/Namespace', iface: 'INamespace' },
  ServiceAccount: { apiVersion: 'v1', cls: ServiceAccount as never, module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
  ConfigMap: { apiVersion: 'v1', cls: ConfigMap as never, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  Secret: { apiVersion: 'v1', cls: Secret as never, module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  Service: { apiVersion: 'v1', cls: Service as never, module: 'kubernetes-models/v1/Service', iface: 'IService' },
  Deployment: { apiVersion: 'apps/v1', cls: Deployment as never, module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  PodDisruptionBudget: { apiVersion: 'policy/v1', cls: PodDisruptionBudget as never, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', iface: 'IPodDisruptionBudget' },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', cls: NetworkPolicy as never, module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', iface: 'INetworkPolicy' },
  ScaledObject: { apiVersion: 'keda.sh/v1alpha1', cls: ScaledObject as never, module: '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject', iface: 'IScaledObject' },
  ServiceMonitor: { apiVersion: 'monitoring.coreos.com/v1', cls: ServiceMonitor as never, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', iface: 'IServiceMonitor' },
};

/** Strimzi KafkaTopic (kafka.strimzi.io/v1beta2), the fields kade uses; unknown fields refused. */
const KAFKA_TOPIC_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 'kafka.strimzi.io/v1beta2' },
    kind: { const: 'KafkaTopic' },
    metadata: {
      type: 'object',
      required: ['name', 'namespace', 'labels'],
      additionalProperties: false,
      properties: {
        // A DNS-1123 subdomain (the Kubernetes rule for object names).
        name: { type: 'string', maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' },
        namespace: { type: 'string', minLength: 1 },
        labels: {
          type: 'object',
          required: ['strimzi.io/cluster'],
          properties: { 'strimzi.io/cluster': { type: 'string', minLength: 1 } },
          additionalProperties: { type: 'string' },
        },
        annotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    spec: {
      type: 'object',
      required: ['partitions', 'replicas', 'config'],
      additionalProperties: false,
      properties: {
        // Kafka topic names: up to 249 of [a-zA-Z0-9._-].
        topicName: { type: 'string', pattern: '^[a-zA-Z0-9._-]{1,249}$' },
        partitions: { type: 'integer', minimum: 1 },
        replicas: { type: 'integer', minimum: 1, maximum: 32767 },
        config: {
          type: 'object',
          required: ['retention.ms'],
          properties: {
            'retention.ms': { type: 'integer', minimum: -1 },
            'cleanup.policy': { enum: ['delete', 'compact', 'compact,delete', 'delete,compact'] },
            'min.insync.replicas': { type: 'integer', minimum: 1 },
            'max.message.bytes': { type: 'integer', minimum: 1 },
          },
          additionalProperties: { type: ['string', 'number', 'boolean'] },
        },
      },
    },
  },
};

/**
 * Unknown-field check against the model packages' TypeScript declarations: walks each manifest
 * alongside its interface type; a key that is neither a declared property nor covered by an index
 * signature (labels, annotations, data, ...) is unknown.
 */
function unknownFieldChecker(): (kind: string, obj: Obj) => string[] {
  const kinds = Object.keys(MODELS);
  const virtual = path.join(ROOT, '__kade_k8s_field_check__.ts');
  const source = kinds.map((k, i) => `import { ${MODELS[k].iface} as T${i} } from '${MODELS[k].module}';\nexport declare const v${i}: T${i};`).join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, target: ts.ScriptTarget.ES2022, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (path.resolve(name) === virtual ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) throw new Error(`model declarations: ${ts.formatDiagnostics(diagnostics, host)}`);
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(virtual);
  assert.ok(sf !== undefined);
  const types = new Map<string, ts.Type>();
  ts.forEachChild(sf, (node) => {
    if (!ts.isVariableStatement(node)) return;
    for (const decl of node.declarationList.declarations) {
      const i = Number(decl.name.getText(sf).slice(1));
      types.set(kinds[i], checker.getTypeAtLocation(decl));
    }
  });

  const walk = (value: unknown, type: ts.Type, at: string, errors: string[]): void => {
    if (value === null || typeof value !== 'object') return;
    const t = checker.getNonNullableType(type);
    if ((t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0) return;
    const members = t.isUnion() ? t.types : [t];
    if (Array.isArray(value)) {
      const elem = members.map((m) => m.getNumberIndexType()).find((x) => x !== undefined);
      if (elem !== undefined) value.forEach((v, i) => walk(v, elem, `${at}[${i}]`, errors));
      return;
    }
    const objects = members.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0 || m.isIntersection());
    if (objects.length === 0) return;
    for (const [key, v] of Object.entries(value as Obj)) {
      let next: ts.Type | undefined;
      let freeForm = false;
      for (const m of objects) {
        const prop = m.getProperty(key);
        if (prop !== undefined) { next = checker.getTypeOfSymbolAtLocation(prop, sf); break; }
        const index = m.getStringIndexType();
        if (index !== undefined) { next = index; break; }
        if (m.getProperties().length === 0) freeForm = true;
      }
      if (next !== undefined) walk(v, next, `${at}.${key}`, errors);
      else if (!freeForm) errors.push(`${at}.${key}: unknown field`);
    }
  };
  return (kind, obj) => {
    const type = types.get(kind);
    assert.ok(type !== undefined, `no declaration for ${kind}`);
    const errors: string[] = [];
    walk(obj, type, kind, errors);
    return errors;
  };
}

const byKind = (docs: Doc[], kind: string): Obj[] => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);
const one = (docs: Doc[], kind: string, name: string): Obj => {
  const hit = byKind(docs, kind).find((o) => o.metadata?.name === name);
  assert.ok(hit !== undefined, `${kind} ${name} exists`);
  return hit;
};
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const container = (d: Obj): Obj => d.spec.template.spec.containers[0];

/** CPU in cores and memory in bytes from Kubernetes quantities. */
function quantity(q: string | number): number {
  const s = String(q);
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?$/.exec(s);
  assert.ok(m !== null, `quantity ${s}`);
  const unit: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * (m[2] === undefined ? 1 : unit[m[2]]);
}

describe('k8s/ manifests', function () {
  this.timeout(60_000);
  let docs: Doc[];
  let config: KadeConfig;
  before(() => {
    docs = loadDocs();
    // The configuration the pods get: the ConfigMap and the Secret as environment, through kade's
    // own loader (strict: every value must be valid, production rules apply).
    const cm = one(docs, 'ConfigMap', 'kade-config');
    const secret = one(docs, 'Secret', 'kade-redis');
    config = loadConfig({ env: { ...cm.data, ...secret.stringData } }).config;
  });

  it('validates every document against the pinned Kubernetes, KEDA and Prometheus Operator schemas, and Strimzi KafkaTopic against its schema', () => {
    const unknownFields = unknownFieldChecker();
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    const validateTopic = ajv.compile(KAFKA_TOPIC_SCHEMA);
    const seen = new Set<string>();
    for (const { file, obj } of docs) {
      const where = `${file}: ${obj.kind} ${obj.metadata?.name}`;
      assert.ok(!seen.has(`${obj.kind}/${obj.metadata?.namespace}/${obj.metadata?.name}`), `${where} is defined once`);
      seen.add(`${obj.kind}/${obj.metadata?.namespace}/${obj.metadata?.name}`);
      if (obj.kind === 'KafkaTopic') {
        assert.ok(validateTopic(obj), `${where}: ${ajv.errorsText(validateTopic.errors)}`);
        continue;
      }
      const model = MODELS[obj.kind];
      assert.ok(model !== undefined, `${where}: no schema for kind ${obj.kind}`);
      assert.equal(obj.apiVersion, model.apiVersion, `${where}: apiVersion`);
      assert.doesNotThrow(() => new model.cls(obj).validate(), (e: Error) => `${where}: ${e.message}`);
      assert.deepEqual(unknownFields(obj.kind, obj), [], where);
      assert.match(String(obj.metadata?.name), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${where}: DNS-1123 label name`);
    }
    for (const kind of ['Namespace', 'ServiceAccount', 'ConfigMap', 'Secret', 'Deployment', 'Service', 'ServiceMonitor', 'PodDisruptionBudget', 'NetworkPolicy', 'ScaledObject', 'KafkaTopic']) {
      assert.ok(byKind(docs, kind).length > 0, `a ${kind} is present`);
    }
  });

  it('lists every manifest file in kustomization.yaml, and generates the dashboard ConfigMap', () => {
    const k = parse(readFileSync(path.join(K8S, 'kustomization.yaml'), 'utf8')) as Obj;
    assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1');
    assert.equal(k.kind, 'Kustomization');
    const yamlFiles = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...(k.resources as string[])].sort(), yamlFiles);
    const generated = (k.configMapGenerator as Obj[]).flatMap((g) => g.files as string[]);
    assert.deepEqual(generated, ['grafana-dashboard.json']);
    for (const f of readdirSync(K8S)) assert.ok(f === 'kustomization.yaml' || yamlFiles.includes(f) || generated.includes(f), `${f} is used by the kustomization`);
    for (const f of [...k.resources, ...generated]) assert.ok(existsSync(path.join(K8S, f)), `${f} exists`);
    // What kustomize generates from it must be a valid ConfigMap too.
    const gen = (k.configMapGenerator as Obj[])[0];
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name, namespace: gen.namespace, labels: gen.options.labels }, data: { 'grafana-dashboard.json': readFileSync(path.join(K8S, 'grafana-dashboard.json'), 'utf8') } };
    new ConfigMap(cm).validate();
    assert.ok(Buffer.byteLength(cm.data['grafana-dashboard.json']) < 256 * 1024, 'fits the last-applied annotation of kubectl apply');
    // The image the Deployments use is the one the kustomization sets.
    const images = (k.images as Obj[]).map((i) => i.name);
    for (const d of byKind(docs, 'Deployment')) assert.ok(images.includes(String(container(d).image).split(':')[0]), `${d.metadata.name}: image set by kustomization`);
  });

  it('configures kade only with KADE_* names of the schema, valid values, and the Redis URL in the Secret', () => {
    const cm = one(docs, 'ConfigMap', 'kade-config');
    const secret = one(docs, 'Secret', 'kade-redis');
    const envNames = new Map<string, { sensitive: boolean }>();
    const walk = (node: Obj): void => {
      for (const v of Object.values(node)) {
        if (typeof v !== 'object' || v === null) continue;
        if ('doc' in v && 'env' in v) envNames.set(String(v.env), { sensitive: v.sensitive === true });
        else walk(v);
      }
    };
    walk(schema as Obj);
    for (const k of Object.keys(cm.data)) {
      assert.ok(envNames.has(k), `ConfigMap: ${k} is not an env name of src/config/schema.ts`);
      assert.ok(!envNames.get(k)?.sensitive, `ConfigMap: ${k} is a secret, it belongs in the Secret`);
    }
    assert.deepEqual(Object.keys(secret.stringData), ['KADE_REDIS_URL']);
    assert.equal(config.env, 'production');
    assert.equal(config.http.port, 9464);
    for (const d of byKind(docs, 'Deployment')) {
      const c = container(d);
      for (const e of c.env as Obj[]) assert.ok(!e.name.startsWith('KADE_') || envNames.has(e.name), `${d.metadata.name}: ${e.name}`);
      const refs = (c.envFrom as Obj[]).map((r) => r.configMapRef?.name ?? r.secretRef?.name);
      assert.deepEqual(refs.sort(), ['kade-config', 'kade-redis']);
    }
  });

  it('runs router and detector as hardened pods with probes on the metrics port and a grace period above the shutdown bound', () => {
    const dockerUser = /^USER (\d+)/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
    for (const [name, role] of [['kade-router', 'router'], ['kade-detector', 'detector']]) {
      const d = one(docs, 'Deployment', name);
      const pod = d.spec.template.spec;
      const c = container(d);
      assert.ok(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), `${name}: selector matches its pods`);
      assert.equal((c.env as Obj[]).find((e) => e.name === 'KADE_ROLE')?.value, role);
      assert.deepEqual(c.args, ['run']);
      assert.ok(pod.terminationGracePeriodSeconds > config.shutdownTimeoutMs / 1000, `${name}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > shutdownTimeoutMs ${config.shutdownTimeoutMs} ms`);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(String(pod.securityContext.runAsUser), dockerUser?.[1], `${name}: runAsUser is the Dockerfile's USER`);
      assert.equal(pod.automountServiceAccountToken, false);
      assert.ok(byKind(docs, 'ServiceAccount').some((s) => s.metadata.name === pod.serviceAccountName));
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.equal(c.securityContext.capabilities.add, undefined);
      for (const r of ['cpu', 'memory']) {
        assert.ok(c.resources.requests[r] !== undefined && c.resources.limits[r] !== undefined, `${name}: ${r} request and limit`);
        assert.ok(quantity(c.resources.requests[r]) <= quantity(c.resources.limits[r]), `${name}: ${r} request <= limit`);
      }
      const heap = /--max-old-space-size=(\d+)/.exec(String((c.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value));
      assert.ok(heap !== null && Number(heap[1]) * 2 ** 20 < quantity(c.resources.limits.memory), `${name}: V8 heap below the memory limit`);
      const port = (c.ports as Obj[]).find((p) => p.name === 'metrics');
      assert.equal(port?.containerPort, config.http.port, `${name}: metrics port is KADE_HTTP_PORT`);
      assert.equal(c.livenessProbe.httpGet.path, '/live');
      assert.equal(c.readinessProbe.httpGet.path, '/ready');
      for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.equal(probe.httpGet.port, 'metrics');
      assert.ok((pod.volumes as Obj[]).some((v) => v.emptyDir !== undefined && (c.volumeMounts as Obj[]).some((m) => m.name === v.name && m.mountPath === '/tmp')), `${name}: writable /tmp`);
    }
    const router = one(docs, 'Deployment', 'kade-router');
    assert.ok(router.spec.replicas <= config.topics.rawPartitions, 'no more routers than raw partitions');
    assert.equal(one(docs, 'Deployment', 'kade-detector').spec.replicas, undefined, 'KEDA owns the detector replica count');
  });

  it('exposes metrics through a Service and a ServiceMonitor that select the pods and port', () => {
    const svc = one(docs, 'Service', 'kade-metrics');
    const sm = one(docs, 'ServiceMonitor', 'kade');
    const port = (svc.spec.ports as Obj[])[0];
    assert.equal((svc.spec.ports as Obj[]).length, 1, 'the metrics port only');
    assert.equal(port.port, config.http.port);
    for (const d of byKind(docs, 'Deployment')) {
      assert.ok(matches(svc.spec.selector, d.spec.template.metadata.labels), `Service selects ${d.metadata.name}`);
      assert.ok((container(d).ports as Obj[]).some((p) => p.name === port.targetPort), `${d.metadata.name} has the Service's targetPort ${port.targetPort}`);
    }
    assert.ok(matches(sm.spec.selector.matchLabels, svc.metadata.labels), 'ServiceMonitor selects the Service');
    assert.deepEqual(sm.spec.namespaceSelector.matchNames, [svc.metadata.namespace]);
    assert.equal(sm.spec.endpoints[0].port, port.name);
    assert.equal(sm.spec.endpoints[0].path, '/metrics');
  });

  it('has a PodDisruptionBudget for each Deployment', () => {
    for (const d of byKind(docs, 'Deployment')) {
      const pdbs = byKind(docs, 'PodDisruptionBudget').filter((p) => matches(p.spec.selector.matchLabels, d.spec.template.metadata.labels));
      assert.equal(pdbs.length, 1, `one PDB for ${d.metadata.name}`);
      assert.equal(pdbs[0].spec.maxUnavailable, 1, 'maxUnavailable, so one replica never blocks a drain');
    }
  });

  it('allows only Kafka, Redis and DNS out, and only the metrics port in', () => {
    const np = one(docs, 'NetworkPolicy', 'kade');
    for (const d of byKind(docs, 'Deployment')) assert.ok(matches(np.spec.podSelector.matchLabels, d.spec.template.metadata.labels), `applies to ${d.metadata.name}`);
    assert.deepEqual([...np.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    const ingressPorts = (np.spec.ingress as Obj[]).flatMap((r) => r.ports as Obj[]);
    assert.deepEqual(ingressPorts, [{ port: config.http.port, protocol: 'TCP' }]);
    const egress = np.spec.egress as Obj[];
    for (const r of egress) {
      assert.ok(Array.isArray(r.to) && r.to.length > 0, 'every egress rule names its peers');
      assert.ok(Array.isArray(r.ports) && r.ports.length > 0, 'every egress rule names its ports');
    }
    const ports = egress.flatMap((r) => (r.ports as Obj[]).map((p) => `${p.port}/${p.protocol}`)).sort();
    const kafkaPort = Number(config.kafka.brokers[0].split(':')[1]);
    const redisPort = Number(new URL(one(docs, 'Secret', 'kade-redis').stringData.KADE_REDIS_URL).port || 6379);
    assert.deepEqual(ports, [`${kafkaPort}/TCP`, `${redisPort}/TCP`, '53/TCP', '53/UDP'].sort());
    // The Kafka peer is the Strimzi cluster the brokers' address and the KafkaTopics name.
    const kafkaRule = egress.find((r) => (r.ports as Obj[]).some((p) => p.port === kafkaPort));
    const topic = byKind(docs, 'KafkaTopic')[0];
    assert.equal(kafkaRule?.to[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], topic.metadata.namespace);
    assert.equal(kafkaRule?.to[0].podSelector.matchLabels['strimzi.io/cluster'], topic.metadata.labels['strimzi.io/cluster']);
  });

  it('declares every topic of kade as a Strimzi KafkaTopic matching the configuration', () => {
    const topics = byKind(docs, 'KafkaTopic');
    const specs = topicSpecs(config);
    assert.deepEqual(topics.map((t) => t.spec.topicName ?? t.metadata.name).sort(), specs.map((s) => s.topic).sort());
    const cluster = topics[0].metadata.labels['strimzi.io/cluster'];
    const ns = topics[0].metadata.namespace;
    assert.deepEqual(config.kafka.brokers, [`${cluster}-kafka-bootstrap.${ns}.svc:9092`], 'kade connects to the bootstrap service of the cluster that owns the topics');
    for (const s of specs) {
      const t = topics.find((x) => (x.spec.topicName ?? x.metadata.name) === s.topic) as Obj;
      assert.equal(t.metadata.labels['strimzi.io/cluster'], cluster);
      assert.equal(t.metadata.namespace, ns);
      assert.equal(t.spec.partitions, s.numPartitions, `${s.topic}: partitions`);
      assert.equal(t.spec.replicas, config.topics.replicationFactor, `${s.topic}: replicas`);
      assert.ok(t.spec.config['min.insync.replicas'] < t.spec.replicas, `${s.topic}: min.insync.replicas leaves room for one broker down`);
      for (const e of s.configEntries ?? []) assert.equal(String(t.spec.config[e.name]), e.value, `${s.topic}: ${e.name}`);
    }
    assert.deepEqual(Object.fromEntries(topics.map((t) => [t.spec.topicName, t.spec.partitions])), {
      'k8s.audit.raw': 3, 'k8s.audit.raw.dlq': 1, 'kade.audit.by-actor': 6, 'k8s.audit.alerts': 1,
    });
  });

  it('scales the detector with KEDA on the keyed topic\'s consumer lag, up to its partition count', () => {
    const so = one(docs, 'ScaledObject', 'kade-detector');
    const detector = one(docs, 'Deployment', 'kade-detector');
    assert.equal(so.spec.scaleTargetRef.name, detector.metadata.name);
    assert.equal(so.metadata.namespace, detector.metadata.namespace);
    const [trigger, ...more] = so.spec.triggers as Obj[];
    assert.equal(more.length, 0);
    assert.equal(trigger.type, 'kafka');
    assert.equal(trigger.metadata.consumerGroup, config.detector.groupId);
    assert.equal(trigger.metadata.consumerGroup, 'kade-detector');
    assert.equal(trigger.metadata.topic, config.topics.keyed);
    assert.equal(trigger.metadata.bootstrapServers, config.kafka.brokers.join(','));
    const keyed = byKind(docs, 'KafkaTopic').find((t) => t.spec.topicName === config.topics.keyed) as Obj;
    assert.equal(so.spec.maxReplicaCount, keyed.spec.partitions, 'maxReplicaCount = keyed partitions');
    assert.equal(so.spec.maxReplicaCount, config.topics.keyedPartitions);
    assert.ok(so.spec.minReplicaCount >= 1 && so.spec.minReplicaCount <= so.spec.maxReplicaCount);
  });

  it('puts kade\'s objects in its namespace', () => {
    const ns = byKind(docs, 'Namespace')[0].metadata.name;
    for (const { file, obj } of docs) {
      if (obj.kind === 'Namespace' || obj.kind === 'KafkaTopic') continue;
      assert.equal(obj.metadata.namespace, ns, `${file}: ${obj.kind} ${obj.metadata.name}`);
    }
  });
});

describe('k8s/grafana-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(path.join(K8S, 'grafana-dashboard.json'), 'utf8')) as Obj;

  // kade's metrics (src/ops/metrics.ts) and their labels.
  const KADE: Record<string, { type: 'counter' | 'gauge' | 'histogram'; labels: string[] }> = {
    kade_records_in_total: { type: 'counter', labels: ['topic'] },
    kade_events_total: { type: 'counter', labels: ['stage', 'outcome'] },
    kade_batch_duration_seconds: { type: 'histogram', labels: ['stage'] },
    kade_windows_closed_total: { type: 'counter', labels: [] },
    kade_alerts_total: { type: 'counter', labels: ['outcome'] },
    kade_watermark_lag_seconds: { type: 'gauge', labels: [] },
    kade_redis_call_duration_seconds: { type: 'histogram', labels: ['op'] },
    kade_consumer_lag_records: { type: 'gauge', labels: ['stage'] },
    kade_state_rebuilds_total: { type: 'counter', labels: ['cause'] },
    kade_alert_records_missing_total: { type: 'counter', labels: [] },
  };
  const OUTCOMES: Record<string, string[]> = {
    kade_events_total: ['routed', 'filtered', 'dead_lettered', 'applied', 'late', 'unknown_rule', 'replayed'],
    kade_alerts_total: ['published', 'suppressed', 'unreadable'],
  };
  // Labels Prometheus (Operator) adds to every scraped series, and the ServiceMonitor's relabeling.
  const TARGET_LABELS = ['namespace', 'pod', 'instance', 'job', 'service', 'endpoint', 'container', 'component'];

  /** Every series name the dashboard may use: kade's, and prom-client's defaults with prefix kade_. */
  async function allowedSeries(): Promise<Map<string, { base: string; labels: string[] }>> {
    const out = new Map<string, { base: string; labels: string[] }>();
    const add = (base: string, type: string, labels: string[]): void => {
      if (type === 'histogram') {
        out.set(`${base}_bucket`, { base, labels: [...labels, 'le'] });
        out.set(`${base}_sum`, { base, labels });
        out.set(`${base}_count`, { base, labels });
      } else {
        out.set(base, { base, labels });
      }
    };
    for (const [name, m] of Object.entries(KADE)) add(name, m.type, m.labels);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'kade_' });
    for (const m of await registry.getMetricsAsJSON()) {
      const labels = [...new Set((m.values as Array<{ labels: Obj }>).flatMap((v) => Object.keys(v.labels)))].filter((l) => l !== 'le');
      add(m.name, String(m.type), labels);
    }
    return out;
  }

  function expressions(): Array<{ where: string; expr: string }> {
    const out: Array<{ where: string; expr: string }> = [];
    const visit = (panels: Obj[]): void => {
      for (const p of panels) {
        for (const t of (p.targets ?? []) as Obj[]) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: String(t.expr) });
        visit((p.panels ?? []) as Obj[]);
      }
    };
    visit(dash.panels as Obj[]);
    for (const v of dash.templating.list as Obj[]) {
      if (v.type === 'query') out.push({ where: `variable ${v.name}`, expr: String(v.query?.query ?? v.query) });
    }
    return out;
  }

  it('is a Grafana dashboard with a Prometheus datasource variable and unique panel ids', () => {
    assert.equal(typeof dash.title, 'string');
    assert.equal(typeof dash.uid, 'string');
    assert.ok(Number.isInteger(dash.schemaVersion));
    const ds = (dash.templating.list as Obj[]).find((v) => v.type === 'datasource');
    assert.equal(ds?.query, 'prometheus');
    const ids = new Set<number>();
    const visit = (panels: Obj[]): void => {
      for (const p of panels) {
        assert.ok(!ids.has(p.id), `panel id ${p.id} unique`);
        ids.add(p.id);
        assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
        if (p.type !== 'row') {
          assert.equal(p.datasource?.uid, `\${${ds?.name}}`, `panel "${p.title}" uses the datasource variable`);
          assert.ok((p.targets as Obj[]).length > 0, `panel "${p.title}" has queries`);
        }
        visit((p.panels ?? []) as Obj[]);
      }
    };
    visit(dash.panels as Obj[]);
  });

  it('uses only kade\'s metric names, with their labels and label values', async () => {
    const allowed = await allowedSeries();
    const used = new Set<string>();
    for (const { where, expr } of expressions()) {
      const names = expr.match(/\b[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\{|\[|\)|,|$|\s))/g) ?? [];
      const metrics = names.filter((n) => n.startsWith('kade_'));
      assert.ok(metrics.length > 0, `${where}: queries a kade_ metric: ${expr}`);
      // Anything that looks like a series name but is not PromQL must be a kade metric.
      for (const n of names) {
        if (n.startsWith('kade_')) continue;
        assert.ok(/^(sum|max|min|avg|count|rate|increase|irate|histogram_quantile|by|without|or|and|unless|on|ignoring|vector|changes|label_values|delta|deriv|topk|bottomk|le|\w+_over_time)$/.test(n) || TARGET_LABELS.includes(n) || Object.values(KADE).some((m) => m.labels.includes(n)), `${where}: "${n}" is not a kade metric: ${expr}`);
      }
      const labelsOf = new Set<string>(TARGET_LABELS);
      for (const m of metrics) {
        const series = allowed.get(m);
        assert.ok(series !== undefined, `${where}: ${m} is not one of kade's metrics: ${expr}`);
        used.add(series.base);
        for (const l of series.labels) labelsOf.add(l);
      }
      // Label names in matchers and in by()/without().
      for (const sel of expr.matchAll(/\{([^}]*)\}/g)) {
        for (const mt of sel[1].matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
          assert.ok(labelsOf.has(mt[1]), `${where}: label ${mt[1]} not on ${metrics.join(', ')}`);
          if (mt[1] === 'outcome') {
            const known = metrics.flatMap((m) => OUTCOMES[m] ?? []);
            for (const v of mt[3].split('|')) assert.ok(known.includes(v), `${where}: outcome "${v}" is not an outcome of ${metrics.join(', ')}`);
          }
        }
      }
      for (const g of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
        for (const l of g[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0)) assert.ok(labelsOf.has(l), `${where}: grouping label ${l} not on ${metrics.join(', ')}`);
      }
    }
    // Every kade metric of the list has a panel.
    for (const name of Object.keys(KADE)) assert.ok(used.has(name), `the dashboard shows ${name}`);
    assert.ok(used.has('kade_process_resident_memory_bytes'), 'the dashboard shows process memory');
  });

  it('agrees with src/ops/metrics.ts on names and types', async () => {
    const json = await new Metrics(true).registry.getMetricsAsJSON();
    const real = new Map(json.map((m) => [m.name, String(m.type)]));
    for (const [name, m] of Object.entries(KADE)) {
      assert.ok(real.has(name), `${name} is missing from src/ops/metrics.ts`);
      assert.equal(real.get(name), m.type, `${name} type`);
    }
    for (const name of real.keys()) {
      if (name.startsWith('kade_') && !name.startsWith('kade_process_') && !name.startsWith('kade_nodejs_')) assert.ok(name in KADE, `${name} (src/ops/metrics.ts) is known to this test`);
    }
  });
});
