/**
 * Deterministic generator of a realistic multi-cluster Kubernetes audit stream: raw
 * `audit.k8s.io/v1` Event objects as kube-apiserver writes them, with permission-enumeration
 * attacks planted at and around every threshold of the seed rule.
 *
 * - Background traffic (controllers, kubelets, humans, CI, scanners, 401s) is built so that it
 *   can never match the rule: actors that receive both decisions touch at most 3 resources.
 *   Every alert on a generated stream therefore comes from a planned attack, and each attack
 *   says exactly which windows must alert (`AttackSpec.expected`).
 * - Events come out in event-time (requestReceivedTimestamp) order, each at most `maxJitterMs`
 *   older than any event before it. stageTimestamp trails by at most ~1.5 s.
 * - Memory stays flat: background is produced tick by tick; only the attack events (a few
 *   thousand) are built up front.
 * - Expectations assume the rule's timing: window 6 min, hop 1 min, suppression 6 min.
 */

export interface GeneratedEvent {
  /** The source cluster; kade maps it to data_stream.namespace. */
  cluster: string;
  event: Record<string, unknown>;
}

/** One grouping key an attack feeds, and exactly what the rule must do with it. */
export interface ExpectedGroup {
  username: string | null;
  sourceIp: string | null;
  /** Window ends (ms) that must alert, ascending; empty = must never alert. */
  alertWindowEnds: number[];
  /** Matching windows swallowed by suppression. */
  suppressed: number;
}

export interface AttackSpec {
  id: string;
  cluster: string;
  username: string | null;
  sourceIps: string[];
  /** Time of the attack's first event, ms. */
  startMs: number;
  /** Time of the attack's last event, ms. */
  endMs: number;
  kind: string;
  /** Always a boolean from this generator (every expectation is exact); 'depends' is reserved. */
  expectAlert: boolean | 'depends';
  description: string;
  /** Raw events the attack adds to the stream (all stages and verbs). */
  eventCount: number;
  expected: ExpectedGroup[];
}

export interface GeneratorOptions {
  seed: number;
  /** Total events produced, attacks included. */
  events: number;
  clusters?: number;
  startMs?: number;
  eventsPerSecond?: number;
  attacks?: number;
  /** Multiplies the number of distinct background actors at the same event rate. */
  actorsScale?: number;
  maxJitterMs?: number;
}

export const HOP_MS = 60_000;
export const WINDOW_MS = 360_000;
export const SUPPRESS_MS = 360_000;

const DEFAULTS = {
  clusters: 3,
  startMs: Date.UTC(2026, 0, 5, 10, 0, 0),
  /** 200k events span about 83 minutes. */
  eventsPerSecond: 40,
  attacks: 60,
  actorsScale: 1,
  maxJitterMs: 2000,
};

/** Attacks may use at most this share of the events. */
const ATTACK_EVENT_SHARE = 0.3;

const K8S_VERSION = 'v1.29.4';
const K8S_COMMIT = '55019c8';
const COMPONENT_UA = (component: string): string =>
  `${component}/${K8S_VERSION} (linux/amd64) kubernetes/${K8S_COMMIT}`;

// ---------------------------------------------------------------------------------------------
// Seeded randomness (no Math.random anywhere).

/** mulberry32: small, fast, good enough for test data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;

  constructor(seed: number, stream: number) {
    // Independent streams so that, e.g., changing the attack plan leaves background unchanged.
    this.next = mulberry32(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35));
  }

  float(): number {
    return this.next();
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  weighted<T extends { w: number }>(items: readonly T[]): T {
    let total = 0;
    for (const item of items) total += item.w;
    let x = this.next() * total;
    for (const item of items) {
      x -= item.w;
      if (x < 0) return item;
    }
    return items[items.length - 1];
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  hex(digits: number): string {
    let s = '';
    while (s.length < digits) s += ((this.next() * 0x100000000) >>> 0).toString(16).padStart(8, '0');
    return s.slice(0, digits);
  }

  uuid(): string {
    const h = this.hex(32);
    const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes API surface the actors use.

interface ResourceDef {
  resource: string;
  group: string;
  version: string;
  namespaced: boolean;
}

const core = (resource: string, namespaced = true): ResourceDef => ({ resource, group: '', version: 'v1', namespaced });
const grp = (group: string, version: string, resource: string, namespaced = true): ResourceDef => ({
  resource,
  group,
  version,
  namespaced,
});

const RES = {
  pods: core('pods'),
  nodes: core('nodes', false),
  namespaces: core('namespaces', false),
  secrets: core('secrets'),
  configmaps: core('configmaps'),
  serviceaccounts: core('serviceaccounts'),
  services: core('services'),
  endpoints: core('endpoints'),
  events: core('events'),
  persistentvolumes: core('persistentvolumes', false),
  persistentvolumeclaims: core('persistentvolumeclaims'),
  resourcequotas: core('resourcequotas'),
  deployments: grp('apps', 'v1', 'deployments'),
  replicasets: grp('apps', 'v1', 'replicasets'),
  daemonsets: grp('apps', 'v1', 'daemonsets'),
  statefulsets: grp('apps', 'v1', 'statefulsets'),
  jobs: grp('batch', 'v1', 'jobs'),
  cronjobs: grp('batch', 'v1', 'cronjobs'),
  leases: grp('coordination.k8s.io', 'v1', 'leases'),
  endpointslices: grp('discovery.k8s.io', 'v1', 'endpointslices'),
  roles: grp('rbac.authorization.k8s.io', 'v1', 'roles'),
  rolebindings: grp('rbac.authorization.k8s.io', 'v1', 'rolebindings'),
  clusterroles: grp('rbac.authorization.k8s.io', 'v1', 'clusterroles', false),
  clusterrolebindings: grp('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', false),
  ingresses: grp('networking.k8s.io', 'v1', 'ingresses'),
  networkpolicies: grp('networking.k8s.io', 'v1', 'networkpolicies'),
  customresourcedefinitions: grp('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', false),
  csinodes: grp('storage.k8s.io', 'v1', 'csinodes', false),
  storageclasses: grp('storage.k8s.io', 'v1', 'storageclasses', false),
  tokenreviews: grp('authentication.k8s.io', 'v1', 'tokenreviews', false),
  subjectaccessreviews: grp('authorization.k8s.io', 'v1', 'subjectaccessreviews', false),
  selfsubjectrulesreviews: grp('authorization.k8s.io', 'v1', 'selfsubjectrulesreviews', false),
  horizontalpodautoscalers: grp('autoscaling', 'v2', 'horizontalpodautoscalers'),
  poddisruptionbudgets: grp('policy', 'v1', 'poddisruptionbudgets'),
  certificates: grp('cert-manager.io', 'v1', 'certificates'),
  verticalpodautoscalers: grp('autoscaling.k8s.io', 'v1', 'verticalpodautoscalers'),
} satisfies Record<string, ResourceDef>;

type ResKey = keyof typeof RES;

function collectionPath(def: ResourceDef, ns: string | undefined): string {
  const prefix = def.group === '' ? `/api/${def.version}` : `/apis/${def.group}/${def.version}`;
  return def.namespaced && ns !== undefined ? `${prefix}/namespaces/${ns}/${def.resource}` : `${prefix}/${def.resource}`;
}

function objectRef(def: ResourceDef, ns?: string, name?: string, sub?: string): Record<string, string> {
  // Key order and omissions as kube-apiserver writes them (no apiGroup for the core group).
  const ref: Record<string, string> = { resource: def.resource };
  if (def.namespaced && ns !== undefined) ref.namespace = ns;
  if (name !== undefined) ref.name = name;
  if (def.group !== '') ref.apiGroup = def.group;
  ref.apiVersion = def.version;
  if (sub !== undefined) ref.subresource = sub;
  return ref;
}

const NON_RESOURCE_DISCOVERY = [
  '/api',
  '/apis',
  '/api/v1',
  '/version',
  '/openapi/v2',
  '/openapi/v3',
  '/apis/apps/v1',
  '/apis/batch/v1',
  '/apis/rbac.authorization.k8s.io/v1',
  '/apis/networking.k8s.io/v1',
  '/apis/apiextensions.k8s.io/v1',
  '/apis/coordination.k8s.io/v1',
  '/apis/metrics.k8s.io/v1beta1',
];

// ---------------------------------------------------------------------------------------------
// Building one Event.

type Decision = 'allow' | 'forbid' | '' | null; // '' = empty annotation, null = no annotations

interface Identity {
  /** null: the Event's user object has no username. */
  username: string | null;
  uid?: string;
  groups?: string[];
  /** null: the Event has no sourceIPs field. */
  sourceIPs: string[] | null;
  userAgent?: string;
  impersonatedUser?: { username: string; groups: string[] };
}

interface Req {
  verb: string;
  requestURI: string;
  objectRef?: Record<string, string>;
  code: number;
  decision: Decision;
  reason?: string;
  extraAnnotations?: Record<string, string>;
}

type Stage = 'RequestReceived' | 'ResponseStarted' | 'ResponseComplete' | 'Panic';

interface Timing {
  receivedMs: number;
  /** Sub-millisecond digits (0-999) so timestamps carry microseconds as the apiserver writes. */
  micros: number;
  latencyMs: number;
}

// Formatting dates dominates generation time; consecutive events mostly share their second.
let cachedSecond = Number.NaN;
let cachedPrefix = '';

function rfc3339Micro(ms: number, micros: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${cachedPrefix}.${String(ms - second * 1000).padStart(3, '0')}${String(micros).padStart(3, '0')}Z`;
}

function responseStatus(req: Req, stage: Stage, username: string | null): Record<string, unknown> {
  if (stage === 'Panic') {
    return {
      metadata: {},
      status: 'Failure',
      message: 'APIServer panic\'d: runtime error: invalid memory address or nil pointer dereference',
      reason: 'InternalError',
      code: 500,
    };
  }
  const ref = req.objectRef;
  const kind = ref?.resource;
  const name = ref?.name;
  switch (req.code) {
    case 401:
      return { metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };
    case 403: {
      const who = `User "${username ?? ''}"`;
      let message: string;
      if (ref === undefined) {
        message = `forbidden: ${who} cannot ${req.verb} path "${req.requestURI.split('?')[0]}"`;
      } else {
        const scope = ref.namespace !== undefined ? `in the namespace "${ref.namespace}"` : 'at the cluster scope';
        const subject = name !== undefined ? `${kind} "${name}"` : kind;
        const resource = ref.subresource !== undefined ? `${kind}/${ref.subresource}` : kind;
        message = `${subject} is forbidden: ${who} cannot ${req.verb} resource "${resource}" in API group "${ref.apiGroup ?? ''}" ${scope}`;
      }
      const details: Record<string, string> = {};
      if (name !== undefined) details.name = name;
      if (ref?.apiGroup !== undefined) details.group = ref.apiGroup;
      if (kind !== undefined) details.kind = kind;
      return { metadata: {}, status: 'Failure', message, reason: 'Forbidden', details, code: 403 };
    }
    case 404:
      return {
        metadata: {},
        status: 'Failure',
        message: `${kind} "${name}" not found`,
        reason: 'NotFound',
        details: { name, kind },
        code: 404,
      };
    case 409:
      return {
        metadata: {},
        status: 'Failure',
        message:
          `Operation cannot be fulfilled on ${kind}${ref?.apiGroup !== undefined ? '.' + ref.apiGroup : ''} "${name}": ` +
          'the object has been modified; please apply your changes to the latest version and try again',
        reason: 'Conflict',
        details: { name, group: ref?.apiGroup ?? '', kind },
        code: 409,
      };
    default:
      return { metadata: {}, code: req.code };
  }
}

function buildEvent(id: Identity, req: Req, stage: Stage, timing: Timing, auditID: string): Record<string, unknown> {
  // Property order follows kube-apiserver's JSON output.
  const event: Record<string, unknown> = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID,
    stage,
    requestURI: req.requestURI,
    verb: req.verb,
  };
  const user: Record<string, unknown> = {};
  if (id.username !== null) user.username = id.username;
  if (id.uid !== undefined) user.uid = id.uid;
  if (id.groups !== undefined) user.groups = id.groups;
  event.user = user;
  if (id.impersonatedUser !== undefined) event.impersonatedUser = id.impersonatedUser;
  if (id.sourceIPs !== null) event.sourceIPs = id.sourceIPs;
  if (id.userAgent !== undefined) event.userAgent = id.userAgent;
  if (req.objectRef !== undefined) event.objectRef = req.objectRef;
  // Nothing about the response is known yet when the request is received.
  if (stage !== 'RequestReceived') event.responseStatus = responseStatus(req, stage, id.username);
  const received = rfc3339Micro(timing.receivedMs, timing.micros);
  event.requestReceivedTimestamp = received;
  event.stageTimestamp =
    stage === 'RequestReceived'
      ? received
      : rfc3339Micro(timing.receivedMs + timing.latencyMs, (timing.micros + 417 * timing.latencyMs) % 1000);
  // Authorization runs after RequestReceived; an unauthenticated request never reaches it.
  if (stage !== 'RequestReceived' && req.decision !== null) {
    event.annotations = {
      'authorization.k8s.io/decision': req.decision,
      'authorization.k8s.io/reason': req.reason ?? '',
      ...req.extraAnnotations,
    };
  }
  return event;
}

// ---------------------------------------------------------------------------------------------
// Background: clusters and their actors.

interface ClusterState {
  index: number;
  name: string;
  namespaces: string[];
  nodes: string[];
  names: Map<string, string[]>;
  controlPlaneIp: string;
  rv: number;
}

interface Op {
  w: number;
  verb: string;
  res?: ResKey;
  /** Non-resource path (no objectRef). */
  path?: string;
  /** Fixed namespace, 'any' (random), or absent: cluster scope / all namespaces. */
  ns?: string;
  /** Fixed name, 'any' (random existing name), 'self' (the actor's own object). */
  name?: string;
  sub?: string;
  query?: string;
  forbid?: boolean;
}

interface Actor {
  cls: ActorClass;
  cluster: ClusterState;
  identity: Identity;
  /** Alternative IP sets: proxies, IPv6, duplicates; index 0 is the usual one. */
  ipChoices: Array<{ w: number; ips: string[] | null }>;
  ops: Op[];
  selfName?: string;
  homeNamespace?: string;
  allowReason: string;
  weight: number;
}

type ActorClass =
  | 'control-plane'
  | 'kubelet'
  | 'apiserver'
  | 'admin'
  | 'developer'
  | 'ci'
  | 'workload'
  | 'operator'
  | 'health'
  | 'scanner'
  | 'unauthenticated';

/** Share of each cluster's traffic by class. */
const CLASS_SHARE: Record<ActorClass, number> = {
  'control-plane': 0.4,
  kubelet: 0.33,
  apiserver: 0.05,
  admin: 0.025,
  developer: 0.035,
  ci: 0.04,
  workload: 0.06,
  operator: 0.03,
  health: 0.02,
  scanner: 0.006,
  unauthenticated: 0.004,
};

const CLUSTER_NAMES = ['prod-eu-west-1', 'prod-us-east-1', 'staging-eu-west-1', 'dev-us-east-1', 'data-ap-south-1'];
const CLUSTER_WEIGHTS = [1, 0.8, 0.5, 0.4, 0.3];
const NODES_PER_CLUSTER = [12, 8, 5, 4, 3];
const APP_NAMESPACES = ['shop', 'payments', 'web', 'search', 'data', 'identity'];
const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'monitoring', 'ingress-nginx', 'cert-manager'];
const APPS = ['api', 'frontend', 'worker', 'cart', 'checkout', 'catalog', 'redis', 'postgres', 'gateway', 'indexer'];

function clusterName(index: number): string {
  return index < CLUSTER_NAMES.length ? CLUSTER_NAMES[index] : `cluster-${index}`;
}

function makeCluster(rng: Rng, index: number, scale: number): ClusterState {
  const nodeCount = Math.max(1, Math.round((NODES_PER_CLUSTER[index] ?? 3) * scale));
  const pool = index % 2 === 0 ? 'pool' : 'vmss';
  // EKS-style names on even clusters, AKS-style on odd ones.
  const nodes = Array.from({ length: nodeCount }, (_, i) =>
    pool === 'pool'
      ? `ip-10-${index}-${1 + Math.floor(i / 200)}-${10 + (i % 200)}.ec2.internal`
      : `aks-nodepool1-${10000000 + index * 7919}-vmss${String(i).padStart(6, '0')}`,
  );
  const namespaces = [...SYSTEM_NAMESPACES, ...APP_NAMESPACES];
  const names = new Map<string, string[]>();
  for (const res of Object.keys(RES)) {
    names.set(res, Array.from({ length: 12 }, () => `${rng.pick(APPS)}-${rng.hex(5)}`));
  }
  names.set(
    'pods',
    Array.from({ length: 60 }, () => `${rng.pick(APPS)}-${rng.hex(10)}-${rng.hex(5)}`),
  );
  names.set('secrets', [...Array.from({ length: 8 }, () => `${rng.pick(APPS)}-tls`), 'sh.helm.release.v1.shop.v12', 'db-credentials']);
  names.set('configmaps', ['kube-root-ca.crt', 'extension-apiserver-authentication', 'coredns', 'app-config', 'feature-flags']);
  return {
    index,
    name: clusterName(index),
    namespaces,
    nodes,
    names,
    controlPlaneIp: `10.${index}.0.10`,
    rv: 1_000_000 + index * 97_531,
  };
}

const nodeIp = (cluster: number, i: number): string => `10.${cluster}.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`;

function rbacReason(kind: 'ClusterRoleBinding' | 'RoleBinding', binding: string, role: string, subject: string): string {
  return `RBAC: allowed by ${kind} "${binding}" of ClusterRole "${role}" to ${subject}`;
}

const SA_GROUPS = (ns: string): string[] => ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];

const leaseOps = (ns: string, name: string): Op[] => [
  { w: 6, verb: 'update', res: 'leases', ns, name, query: '?timeout=5s' },
  { w: 2, verb: 'get', res: 'leases', ns, name, query: '?timeout=5s' },
];

/** Controllers started by kube-controller-manager with per-controller service accounts. */
const SA_CONTROLLERS: Array<{ name: string; w: number; ops: Op[] }> = [
  {
    name: 'deployment-controller',
    w: 2,
    ops: [
      { w: 3, verb: 'update', res: 'deployments', ns: 'any', name: 'any', sub: 'status' },
      { w: 2, verb: 'update', res: 'replicasets', ns: 'any', name: 'any' },
      { w: 1, verb: 'create', res: 'replicasets', ns: 'any' },
      { w: 1, verb: 'create', res: 'events', ns: 'any' },
    ],
  },
  {
    name: 'replicaset-controller',
    w: 2,
    ops: [
      { w: 3, verb: 'create', res: 'pods', ns: 'any' },
      { w: 2, verb: 'delete', res: 'pods', ns: 'any', name: 'any' },
      { w: 2, verb: 'update', res: 'replicasets', ns: 'any', name: 'any', sub: 'status' },
      { w: 1, verb: 'create', res: 'events', ns: 'any' },
    ],
  },
  {
    name: 'endpointslice-controller',
    w: 2,
    ops: [
      { w: 4, verb: 'update', res: 'endpointslices', ns: 'any', name: 'any' },
      { w: 1, verb: 'create', res: 'endpointslices', ns: 'any' },
      { w: 1, verb: 'delete', res: 'endpointslices', ns: 'any', name: 'any' },
    ],
  },
  {
    name: 'namespace-controller',
    w: 0.5,
    ops: [
      { w: 2, verb: 'get', res: 'namespaces', name: 'any' },
      { w: 1, verb: 'deletecollection', res: 'configmaps', ns: 'any' },
      { w: 1, verb: 'deletecollection', res: 'pods', ns: 'any' },
      { w: 1, verb: 'list', res: 'namespaces' },
    ],
  },
  {
    name: 'node-controller',
    w: 1,
    ops: [
      { w: 3, verb: 'patch', res: 'nodes', name: 'any' },
      { w: 2, verb: 'list', res: 'pods' },
      { w: 1, verb: 'update', res: 'nodes', name: 'any', sub: 'status' },
    ],
  },
  {
    name: 'generic-garbage-collector',
    w: 1.5,
    ops: [
      ...(['pods', 'replicasets', 'deployments', 'jobs', 'endpointslices', 'configmaps', 'secrets', 'serviceaccounts', 'leases', 'roles'] as const).map(
        (res): Op => ({ w: 1, verb: 'watch', res }),
      ),
      ...NON_RESOURCE_DISCOVERY.slice(6).map((path): Op => ({ w: 0.5, verb: 'get', path: `${path}?timeout=32s` })),
    ],
  },
  {
    name: 'resourcequota-controller',
    w: 1,
    ops: [
      ...NON_RESOURCE_DISCOVERY.map((path): Op => ({ w: 1, verb: 'get', path: `${path}?timeout=32s` })),
      { w: 2, verb: 'list', res: 'resourcequotas' },
    ],
  },
  {
    name: 'cronjob-controller',
    w: 0.7,
    ops: [
      { w: 3, verb: 'list', res: 'jobs' },
      { w: 2, verb: 'get', res: 'cronjobs', ns: 'any', name: 'any' },
      { w: 1, verb: 'create', res: 'jobs', ns: 'any' },
      { w: 1, verb: 'update', res: 'cronjobs', ns: 'any', name: 'any', sub: 'status' },
    ],
  },
  {
    name: 'horizontal-pod-autoscaler',
    w: 0.7,
    ops: [
      { w: 2, verb: 'get', res: 'deployments', ns: 'any', name: 'any', sub: 'scale' },
      { w: 1, verb: 'update', res: 'horizontalpodautoscalers', ns: 'any', name: 'any', sub: 'status' },
    ],
  },
];

/** Builds the background actors of one cluster. */
function makeActors(rng: Rng, cluster: ClusterState, scale: number, humans: HumanProfile[]): Actor[] {
  const actors: Actor[] = [];
  const c = cluster.index;
  const cpIps = [cluster.controlPlaneIp];
  const add = (
    cls: ActorClass,
    weight: number,
    identity: Identity,
    ops: Op[],
    allowReason: string,
    extra: Partial<Actor> = {},
  ): void => {
    actors.push({
      cls,
      cluster,
      identity,
      ipChoices: [{ w: 1, ips: identity.sourceIPs }],
      ops,
      allowReason,
      weight,
      ...extra,
    });
  };

  // Control plane: leader election, scheduling and the controllers.
  add(
    'control-plane',
    4,
    {
      username: 'system:kube-controller-manager',
      groups: ['system:authenticated'],
      sourceIPs: cpIps,
      userAgent: `${COMPONENT_UA('kube-controller-manager')}/leader-election`,
    },
    [
      ...leaseOps('kube-system', 'kube-controller-manager'),
      { w: 1, verb: 'get', res: 'configmaps', ns: 'kube-system', name: 'extension-apiserver-authentication' },
      { w: 1, verb: 'create', res: 'tokenreviews' },
    ],
    rbacReason('ClusterRoleBinding', 'system:kube-controller-manager', 'system:kube-controller-manager', 'User "system:kube-controller-manager"'),
  );
  add(
    'control-plane',
    3,
    { username: 'system:kube-scheduler', groups: ['system:authenticated'], sourceIPs: cpIps, userAgent: `${COMPONENT_UA('kube-scheduler')}/leader-election` },
    [
      ...leaseOps('kube-system', 'kube-scheduler'),
      { w: 2, verb: 'create', res: 'pods', ns: 'any', name: 'any', sub: 'binding' },
      { w: 1, verb: 'patch', res: 'pods', ns: 'any', name: 'any', sub: 'status' },
      { w: 1, verb: 'watch', res: 'persistentvolumeclaims' },
      { w: 1, verb: 'watch', res: 'nodes' },
      { w: 0.5, verb: 'watch', res: 'csinodes' },
    ],
    rbacReason('ClusterRoleBinding', 'system:kube-scheduler', 'system:kube-scheduler', 'User "system:kube-scheduler"'),
  );
  for (const ctl of SA_CONTROLLERS) {
    add(
      'control-plane',
      ctl.w,
      {
        username: `system:serviceaccount:kube-system:${ctl.name}`,
        uid: rng.uuid(),
        groups: SA_GROUPS('kube-system'),
        sourceIPs: cpIps,
        userAgent: `${COMPONENT_UA('kube-controller-manager')}/system:serviceaccount:kube-system:${ctl.name}`,
      },
      ctl.ops,
      rbacReason('ClusterRoleBinding', `system:controller:${ctl.name}`, `system:controller:${ctl.name}`, `ServiceAccount "${ctl.name}/kube-system"`),
    );
  }
  const addonSa = (name: string, ns: string, ua: string, ops: Op[], w: number, ip: string): void =>
    add(
      'control-plane',
      w,
      { username: `system:serviceaccount:${ns}:${name}`, uid: rng.uuid(), groups: SA_GROUPS(ns), sourceIPs: [ip], userAgent: ua },
      ops,
      rbacReason('ClusterRoleBinding', `system:${name}`, `system:${name}`, `ServiceAccount "${name}/${ns}"`),
    );
  addonSa('coredns', 'kube-system', 'coredns/v1.11.1 (linux/amd64) kubernetes/$Format', [
    { w: 2, verb: 'watch', res: 'endpointslices' },
    { w: 1, verb: 'watch', res: 'services' },
    { w: 1, verb: 'watch', res: 'namespaces' },
    { w: 1, verb: 'list', res: 'endpointslices' },
  ], 1, `10.${100 + c}.0.${rng.range(2, 250)}`);
  addonSa('kube-proxy', 'kube-system', COMPONENT_UA('kube-proxy'), [
    { w: 2, verb: 'watch', res: 'endpointslices' },
    { w: 1, verb: 'watch', res: 'services' },
    { w: 1, verb: 'get', res: 'nodes', name: 'any' },
  ], 1, nodeIp(c, 0));
  addonSa('metrics-server', 'kube-system', 'metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format', [
    { w: 3, verb: 'create', res: 'tokenreviews' },
    { w: 3, verb: 'create', res: 'subjectaccessreviews' },
    { w: 1, verb: 'list', res: 'nodes' },
    { w: 1, verb: 'get', res: 'configmaps', ns: 'kube-system', name: 'extension-apiserver-authentication' },
  ], 1, `10.${100 + c}.0.${rng.range(2, 250)}`);

  // Kubelets: node leases, status and the pods they run.
  cluster.nodes.forEach((node, i) => {
    const ns = 'kube-node-lease';
    add(
      'kubelet',
      1,
      { username: `system:node:${node}`, groups: ['system:nodes', 'system:authenticated'], sourceIPs: [nodeIp(c, i)], userAgent: COMPONENT_UA('kubelet') },
      [
        { w: 5, verb: 'update', res: 'leases', ns, name: 'self', query: '?timeout=10s' },
        { w: 2, verb: 'patch', res: 'nodes', name: 'self', sub: 'status', query: '?timeout=10s' },
        { w: 2, verb: 'get', res: 'nodes', name: 'self', query: '?resourceVersion=0&timeout=10s' },
        { w: 1, verb: 'get', res: 'pods', ns: 'any', name: 'any' },
        { w: 1, verb: 'patch', res: 'pods', ns: 'any', name: 'any', sub: 'status' },
        { w: 1, verb: 'create', res: 'serviceaccounts', ns: 'any', name: 'any', sub: 'token' },
        { w: 0.5, verb: 'watch', res: 'configmaps', ns: 'any', query: '?fieldSelector=metadata.name%3Dkube-root-ca.crt&' },
        { w: 0.5, verb: 'watch', res: 'pods', query: `?fieldSelector=spec.nodeName%3D${node}&` },
        { w: 0.3, verb: 'create', res: 'events', ns: 'any' },
        { w: 0.2, verb: 'get', res: 'csinodes', name: 'self' },
      ],
      '',
      { selfName: node },
    );
  });

  // The apiserver's own loopback client.
  add(
    'apiserver',
    1,
    { username: 'system:apiserver', uid: rng.uuid(), groups: ['system:authenticated'], sourceIPs: ['::1'], userAgent: COMPONENT_UA('kube-apiserver') },
    [
      { w: 3, verb: 'get', res: 'namespaces', name: 'default' },
      { w: 2, verb: 'get', res: 'services', ns: 'default', name: 'kubernetes' },
      { w: 2, verb: 'get', res: 'endpoints', ns: 'default', name: 'kubernetes' },
      { w: 2, verb: 'list', res: 'resourcequotas' },
      { w: 1, verb: 'watch', res: 'clusterroles' },
      { w: 1, verb: 'watch', res: 'rolebindings' },
      { w: 1, verb: 'update', res: 'leases', ns: 'kube-system', name: `apiserver-${rng.hex(26)}` },
    ],
    rbacReason('ClusterRoleBinding', 'system:masters', 'cluster-admin', 'Group "system:masters"'),
  );

  // Humans, who often work on several clusters from the same address.
  for (const h of humans) {
    if (!h.clusters.includes(c)) continue;
    actors.push({
      cls: h.admin ? 'admin' : 'developer',
      cluster,
      identity: { username: h.username, groups: h.groups, sourceIPs: h.ipChoices[0].ips, userAgent: h.userAgent },
      ipChoices: h.ipChoices,
      ops: h.admin ? ADMIN_OPS : DEVELOPER_OPS,
      homeNamespace: h.namespace,
      allowReason: h.admin
        ? rbacReason('ClusterRoleBinding', 'platform-admins', 'cluster-admin', 'Group "oidc:platform-admins"')
        : rbacReason('RoleBinding', `developers/${h.namespace}`, 'edit', `Group "oidc:team-${h.namespace}"`),
      weight: 1,
    });
  }

  // CI/CD: deploys with create/patch/update, all allowed.
  const ciCount = Math.max(1, Math.round(2 * scale));
  for (let i = 0; i < ciCount; i++) {
    const argo = i % 2 === 0;
    const ns = argo ? 'argocd' : 'ci';
    const name = argo ? 'argocd-application-controller' : `deployer-${i}`;
    add(
      'ci',
      1,
      {
        username: `system:serviceaccount:${ns}:${name}`,
        uid: rng.uuid(),
        groups: SA_GROUPS(ns),
        sourceIPs: [`10.${100 + c}.${1 + (i % 200)}.${rng.range(2, 250)}`],
        userAgent: argo ? 'argocd-application-controller/v2.10.4+f5d63a5 (linux/amd64)' : 'Helm/3.14.2',
      },
      CI_OPS,
      rbacReason('ClusterRoleBinding', `${name}-deployer`, 'cluster-admin', `ServiceAccount "${name}/${ns}"`),
    );
  }

  // In-cluster workloads reading their own config with their service account.
  const workloadCount = Math.max(1, Math.round(20 * scale));
  for (let i = 0; i < workloadCount; i++) {
    const ns = APP_NAMESPACES[i % APP_NAMESPACES.length];
    const app = `${APPS[i % APPS.length]}${i >= APPS.length ? `-${Math.floor(i / APPS.length)}` : ''}`;
    add(
      'workload',
      1,
      {
        username: `system:serviceaccount:${ns}:${app}`,
        uid: rng.uuid(),
        groups: SA_GROUPS(ns),
        sourceIPs: [`10.${100 + c}.${10 + Math.floor(i / 250)}.${(i % 250) + 2}`],
        userAgent: rng.pick(['Go-http-client/2.0', 'okhttp/4.12.0', 'kubernetes-client-python/29.0.0', `${app}/1.0 (linux/amd64) kubernetes/$Format`]),
      },
      [
        { w: 3, verb: 'get', res: 'configmaps', ns, name: `${app}-config` },
        { w: 2, verb: 'get', res: 'secrets', ns, name: `${app}-credentials` },
        { w: 1, verb: 'watch', res: 'endpoints', ns },
        { w: 1, verb: 'list', res: 'pods', ns, query: `?labelSelector=app%3D${app}` },
      ],
      rbacReason('RoleBinding', `${app}-reader`, 'view', `ServiceAccount "${app}/${ns}"`),
    );
  }

  // Operators with incomplete RBAC: retried 403s, but never on more than 3 resources in total.
  const operatorCount = Math.max(1, Math.round(2 * scale));
  for (let i = 0; i < operatorCount; i++) {
    const certManager = i % 2 === 0;
    const ns = certManager ? 'cert-manager' : 'monitoring';
    const name = certManager ? `cert-manager-cainjector${i > 1 ? `-${i}` : ''}` : `vpa-recommender${i > 1 ? `-${i}` : ''}`;
    add(
      'operator',
      1,
      {
        username: `system:serviceaccount:${ns}:${name}`,
        uid: rng.uuid(),
        groups: SA_GROUPS(ns),
        sourceIPs: [`10.${100 + c}.2.${(i % 250) + 2}`],
        userAgent: certManager ? 'cainjector/v1.14.4 (linux/amd64) cert-manager/f8bd6e7' : 'vpa-recommender/v1.1.2 (linux/amd64) kubernetes/$Format',
      },
      certManager
        ? [
            ...leaseOps('kube-system', 'cert-manager-cainjector-leader-election'),
            { w: 3, verb: 'list', res: 'customresourcedefinitions', forbid: true },
            { w: 3, verb: 'watch', res: 'customresourcedefinitions', forbid: true },
            { w: 1, verb: 'create', res: 'events', ns: 'cert-manager' },
          ]
        : [
            { w: 3, verb: 'list', res: 'verticalpodautoscalers', forbid: true },
            { w: 1, verb: 'watch', res: 'verticalpodautoscalers', forbid: true },
            { w: 2, verb: 'list', res: 'pods' },
            { w: 1, verb: 'get', res: 'pods', ns: 'any', name: 'any' },
          ],
      rbacReason('ClusterRoleBinding', name, name, `ServiceAccount "${name}/${ns}"`),
    );
  }

  // Load-balancer health checks: anonymous, non-resource, allowed.
  const publicInfo = rbacReason('ClusterRoleBinding', 'system:public-info-viewer', 'system:public-info-viewer', 'Group "system:unauthenticated"');
  add(
    'health',
    1,
    { username: 'system:anonymous', groups: ['system:unauthenticated'], sourceIPs: [`10.${c}.0.2`], userAgent: 'ELB-HealthChecker/2.0' },
    [
      { w: 3, verb: 'get', path: '/healthz' },
      { w: 2, verb: 'get', path: '/readyz' },
      { w: 2, verb: 'get', path: '/livez' },
    ],
    publicInfo,
  );

  // Internet scanners: anonymous, mostly forbidden, only ever 3 resources.
  const scannerCount = Math.max(1, Math.round(4 * scale));
  for (let i = 0; i < scannerCount; i++) {
    add(
      'scanner',
      1,
      { username: 'system:anonymous', groups: ['system:unauthenticated'], sourceIPs: [publicIp(rng)], userAgent: rng.pick(SCANNER_UAS) },
      [
        { w: 2, verb: 'get', path: '/version' },
        { w: 1, verb: 'get', path: '/', forbid: true },
        { w: 1, verb: 'get', path: '/.env', forbid: true },
        { w: 1, verb: 'get', path: '/api', forbid: true },
        { w: 1, verb: 'list', res: 'pods', forbid: true },
        { w: 1, verb: 'list', res: 'secrets', ns: 'kube-system', forbid: true },
        { w: 1, verb: 'list', res: 'namespaces', forbid: true },
      ],
      publicInfo,
    );
  }

  // Failed authentication: 401, no username, no authorization annotations.
  const unauthCount = Math.max(1, Math.round(3 * scale));
  for (let i = 0; i < unauthCount; i++) {
    add(
      'unauthenticated',
      1,
      { username: null, sourceIPs: [publicIp(rng)], userAgent: rng.pick(SCANNER_UAS) },
      [
        { w: 2, verb: 'get', path: '/api/v1' },
        { w: 1, verb: 'list', res: 'pods' },
        { w: 1, verb: 'get', path: '/version' },
      ],
      '',
    );
  }

  // Weights: class share split across the class's actors, scaled by each actor's own weight.
  const classTotals = new Map<ActorClass, number>();
  for (const a of actors) classTotals.set(a.cls, (classTotals.get(a.cls) ?? 0) + a.weight);
  for (const a of actors) a.weight = (CLASS_SHARE[a.cls] * a.weight) / (classTotals.get(a.cls) ?? 1);
  return actors;
}

const SCANNER_UAS = [
  'Mozilla/5.0 zgrab/0.x',
  'python-requests/2.31.0',
  'curl/7.88.1',
  'Go-http-client/1.1',
  'masscan/1.3 (https://github.com/robertdavidgraham/masscan)',
];

function publicIp(rng: Rng): string {
  // Avoids the documentation ranges reserved for attackers and the private ranges of clusters.
  return `${rng.pick([45, 80, 91, 103, 146, 185, 193])}.${rng.range(1, 254)}.${rng.range(1, 254)}.${rng.range(1, 254)}`;
}

const ADMIN_OPS: Op[] = [
  { w: 1, verb: 'get', path: '/api?timeout=32s' },
  { w: 1, verb: 'get', path: '/apis?timeout=32s' },
  { w: 4, verb: 'list', res: 'pods', ns: 'any' },
  { w: 2, verb: 'get', res: 'pods', ns: 'any', name: 'any' },
  { w: 1, verb: 'get', res: 'pods', ns: 'any', name: 'any', sub: 'log', query: '?container=app&follow=false&tailLines=200' },
  { w: 0.5, verb: 'create', res: 'pods', ns: 'any', name: 'any', sub: 'exec', query: '?command=sh&container=app&stdin=true&stdout=true&tty=true' },
  { w: 2, verb: 'list', res: 'deployments', ns: 'any' },
  { w: 1, verb: 'patch', res: 'deployments', ns: 'any', name: 'any', query: '?fieldManager=kubectl-edit&fieldValidation=Strict' },
  { w: 1, verb: 'list', res: 'nodes' },
  { w: 1, verb: 'list', res: 'events', ns: 'any' },
  { w: 0.5, verb: 'get', res: 'clusterrolebindings', name: 'any' },
  { w: 0.3, verb: 'delete', res: 'pods', ns: 'any', name: 'any' },
  { w: 0.2, verb: 'proxy', res: 'services', ns: 'monitoring', name: 'grafana' },
  { w: 0.2, verb: 'connect', res: 'pods', ns: 'any', name: 'any', sub: 'portforward' },
];

/** Developers: bound to their namespace; 403 elsewhere. Only pods, deployments, services. */
const DEVELOPER_OPS: Op[] = [
  { w: 1, verb: 'get', path: '/api?timeout=32s' },
  { w: 1, verb: 'get', path: '/apis?timeout=32s' },
  { w: 4, verb: 'list', res: 'pods', ns: 'home' },
  { w: 2, verb: 'get', res: 'pods', ns: 'home', name: 'any' },
  { w: 2, verb: 'get', res: 'pods', ns: 'home', name: 'any', sub: 'log', query: '?container=app&follow=true' },
  { w: 2, verb: 'list', res: 'deployments', ns: 'home' },
  { w: 1, verb: 'patch', res: 'deployments', ns: 'home', name: 'any', query: '?fieldManager=kubectl-client-side-apply&fieldValidation=Strict' },
  { w: 1, verb: 'get', res: 'services', ns: 'home', name: 'any' },
  { w: 1, verb: 'list', res: 'pods', ns: 'other', forbid: true },
  { w: 0.5, verb: 'list', res: 'services', ns: 'other', forbid: true },
];

const CI_OPS: Op[] = [
  { w: 3, verb: 'get', res: 'deployments', ns: 'any', name: 'any' },
  { w: 3, verb: 'patch', res: 'deployments', ns: 'any', name: 'any', query: '?fieldManager=helm' },
  { w: 2, verb: 'list', res: 'secrets', ns: 'any', query: '?labelSelector=name%3Dshop%2Cowner%3Dhelm' },
  { w: 1, verb: 'create', res: 'secrets', ns: 'any' },
  { w: 1, verb: 'update', res: 'secrets', ns: 'any', name: 'any' },
  { w: 1, verb: 'create', res: 'configmaps', ns: 'any' },
  { w: 1, verb: 'patch', res: 'services', ns: 'any', name: 'any' },
  { w: 1, verb: 'update', res: 'ingresses', ns: 'any', name: 'any' },
  { w: 0.5, verb: 'delete', res: 'jobs', ns: 'any', name: 'any' },
];

interface HumanProfile {
  username: string;
  groups: string[];
  admin: boolean;
  namespace: string;
  clusters: number[];
  userAgent: string;
  ipChoices: Array<{ w: number; ips: string[] | null }>;
}

const FIRST_NAMES = [
  'alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy',
  'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'zoe',
];
const KUBECTL_UAS = [
  'kubectl/v1.29.2 (darwin/arm64) kubernetes/4b8e819',
  'kubectl/v1.28.4 (linux/amd64) kubernetes/bae2c62',
  'kubectl/v1.30.1 (windows/amd64) kubernetes/6911225',
  'k9s/v0.32.4 (darwin/arm64) kubernetes/$Format',
];

function makeHumans(rng: Rng, clusters: number, scale: number): HumanProfile[] {
  const count = Math.max(2, Math.round(10 * scale));
  const humans: HumanProfile[] = [];
  for (let i = 0; i < count; i++) {
    const admin = i % 3 === 0;
    const first = FIRST_NAMES[i % FIRST_NAMES.length];
    const username = `oidc:${first}${i >= FIRST_NAMES.length ? i : ''}@example.com`;
    const namespace = APP_NAMESPACES[i % APP_NAMESPACES.length];
    const office = `198.18.${(i >> 8) & 255}.${(i & 255) || 1}`;
    const v6 = `fd12:3456:789a:${(i + 1).toString(16)}::${(10 + i).toString(16)}`;
    // kube-apiserver lists X-Forwarded-For hops first, then the connection's address.
    const proxy = `10.250.0.${5 + (i % 3)}`;
    const ipChoices: Array<{ w: number; ips: string[] | null }> = [
      { w: 10, ips: i % 4 === 1 ? [v6] : [office] },
      { w: 2, ips: [office, proxy] },
      { w: 1, ips: [v6] },
      { w: 0.5, ips: [proxy, proxy] },
      { w: 0.05, ips: null },
    ];
    const home = i % clusters;
    const clusterList = admin ? Array.from({ length: clusters }, (_, c) => c) : [home, (home + 1) % clusters].filter((v, k, a) => a.indexOf(v) === k);
    humans.push({
      username,
      groups: [admin ? 'oidc:platform-admins' : `oidc:team-${namespace}`, 'system:authenticated'],
      admin,
      namespace,
      clusters: clusterList,
      userAgent: rng.pick(KUBECTL_UAS),
      ipChoices,
    });
  }
  return humans;
}

// ---------------------------------------------------------------------------------------------
// Turning an actor's operation into a request.

function watchQuery(rng: Rng, cluster: ClusterState, prefix: string): string {
  const seconds = rng.range(300, 600);
  cluster.rv += rng.range(1, 40);
  const sep = prefix === '' ? '?' : prefix.endsWith('&') ? '' : '&';
  const timeout = `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  return `${prefix}${sep}allowWatchBookmarks=true&resourceVersion=${cluster.rv}&timeout=${timeout}&timeoutSeconds=${seconds}&watch=true`;
}

function opRequest(rng: Rng, actor: Actor, op: Op): Req {
  const cluster = actor.cluster;
  const forbid = op.forbid === true;
  if (actor.cls === 'unauthenticated') {
    // Rejected before authorization: 401 and no decision annotation.
    const def = op.res !== undefined ? RES[op.res] : undefined;
    const uri = def !== undefined ? collectionPath(def, undefined) + '?limit=500' : op.path ?? '/';
    return { verb: op.verb, requestURI: uri, objectRef: def !== undefined ? objectRef(def) : undefined, code: 401, decision: null };
  }
  if (op.res === undefined) {
    return {
      verb: op.verb,
      requestURI: op.path ?? '/',
      code: forbid ? 403 : 200,
      decision: forbid ? 'forbid' : 'allow',
      reason: forbid ? '' : actor.allowReason,
    };
  }
  const def = RES[op.res];
  let ns: string | undefined;
  if (op.ns === 'any') ns = rng.pick(cluster.namespaces);
  else if (op.ns === 'home') ns = actor.homeNamespace;
  else if (op.ns === 'other') ns = rng.pick(cluster.namespaces.filter((n) => n !== actor.homeNamespace));
  else ns = op.ns;
  let name: string | undefined;
  if (op.name === 'any') name = rng.pick(cluster.names.get(op.res) ?? ['default']);
  else if (op.name === 'self') name = actor.selfName;
  else name = op.name;

  let uri = collectionPath(def, ns);
  if (op.verb === 'proxy') uri = `/api/v1/proxy/namespaces/${ns}/services/${name}:http/api/health`;
  else if (name !== undefined) uri += `/${name}${op.sub !== undefined ? `/${op.sub}` : ''}`;
  const query = op.query ?? '';
  if (op.verb === 'watch') uri += watchQuery(rng, cluster, query);
  else if (op.verb === 'list') uri += query !== '' ? query : actor.cls === 'admin' || actor.cls === 'developer' ? '?limit=500' : '?limit=500&resourceVersion=0';
  else uri += query;

  let code = 200;
  if (forbid) code = 403;
  else if (op.verb === 'create') code = 201;
  else if (op.verb === 'get' && name !== undefined && rng.chance(0.02)) code = 404;
  else if (op.verb === 'update' && name !== undefined && rng.chance(0.02)) code = 409;
  // A few pipelines blank the annotation; it must then count as absent.
  const decision: Decision = forbid ? 'forbid' : rng.chance(0.001) ? '' : 'allow';
  const req: Req = {
    verb: op.verb,
    requestURI: uri,
    objectRef: objectRef(def, ns, name, op.sub),
    code,
    decision,
    reason: decision === 'allow' ? actor.allowReason : '',
  };
  if (op.res === 'pods' && op.verb === 'create' && op.sub === undefined) {
    req.extraAnnotations = { 'pod-security.kubernetes.io/enforce-policy': 'baseline:latest' };
  }
  return req;
}

/** The events one background request leaves in the audit log, in log order. */
function requestStages(rng: Rng, actor: Actor, req: Req): Stage[] {
  if (actor.cls === 'unauthenticated') return rng.chance(0.7) ? ['ResponseStarted'] : ['ResponseComplete'];
  if (rng.chance(0.0003)) return ['RequestReceived', 'Panic'];
  if (req.verb === 'watch') return rng.chance(0.5) ? ['ResponseStarted', 'ResponseComplete'] : ['ResponseComplete'];
  return rng.chance(0.04) ? ['RequestReceived', 'ResponseComplete'] : ['ResponseComplete'];
}

// ---------------------------------------------------------------------------------------------
// Attacks.

interface Target {
  verb: string;
  requestURI: string;
  objectRef?: Record<string, string>;
  resource: string | null;
  decision: Decision;
}

interface AttackActor {
  username: string | null;
  groups: string[];
  /** null: no sourceIPs field. */
  ips: string[] | null;
  userAgent: string;
}

interface AttackEvent {
  timeMs: number;
  micros: number;
  cluster: string;
  target: Target;
  /** Overrides the actor's sourceIPs for this event. */
  ips?: string[] | null;
  stage?: Stage;
  verb?: string;
  /** Shared by the events of one request logged at several stages. */
  auditID?: string;
}

interface KindBuild {
  events: AttackEvent[];
  description: string;
  /** Per distinct IP (or null): alert window ends and suppressed count. */
  expected: Map<string | null, { ends: number[]; suppressed: number }>;
}

interface KindContext {
  rng: Rng;
  /** Start of the attack's first pane (a multiple of HOP_MS). */
  a: number;
  cluster: string;
  otherCluster: string;
  actor: AttackActor;
}

interface KindDef {
  kind: string;
  /** Number of panes the attack's events occupy, starting at the base pane. */
  panes: number;
  actor?: 'null-username' | 'null-ip' | 'empty-ips' | 'multi-ip' | 'dup-ip' | 'ipv6' | 'anonymous';
  build: (ctx: KindContext) => KindBuild;
}

const PROBE_RESOURCES: ResKey[] = [
  'secrets', 'pods', 'configmaps', 'serviceaccounts', 'nodes', 'namespaces', 'deployments', 'daemonsets', 'roles',
  'clusterroles', 'clusterrolebindings', 'rolebindings', 'services', 'cronjobs', 'persistentvolumes',
  'customresourcedefinitions', 'networkpolicies', 'ingresses', 'selfsubjectrulesreviews',
];
const PROBE_NAMESPACES = ['default', 'kube-system', 'prod', 'payments', 'monitoring', 'argocd', 'vault', 'istio-system'];

/**
 * Distinct probe targets: `resources` resource URIs (one per distinct resource), `extra` more
 * URIs on those resources, and `nonResource` URIs without objectRef. All URIs differ.
 */
function probeTargets(rng: Rng, resources: number, extra: number, nonResource: number): Target[] {
  const chosen = rng.shuffle([...PROBE_RESOURCES]).slice(0, resources);
  const targets: Target[] = [];
  const seen = new Set<string>();
  const push = (t: Target): boolean => {
    if (seen.has(t.requestURI)) return false;
    seen.add(t.requestURI);
    targets.push(t);
    return true;
  };
  const resourceTarget = (key: ResKey, variant: number): Target => {
    const def = RES[key];
    if (key === 'selfsubjectrulesreviews') {
      // `kubectl auth can-i --list`: one create per namespace asked about.
      const query = variant === 0 ? '' : `?ns=${PROBE_NAMESPACES[variant % PROBE_NAMESPACES.length]}-${variant}`;
      return { verb: 'create', requestURI: collectionPath(def, undefined) + query, objectRef: objectRef(def), resource: def.resource, decision: null };
    }
    const ns = def.namespaced ? PROBE_NAMESPACES[variant % PROBE_NAMESPACES.length] : undefined;
    const named = variant >= PROBE_NAMESPACES.length;
    const name = named ? `${rng.pick(APPS)}-${variant}` : undefined;
    const verb = named ? 'get' : variant % 5 === 4 ? 'watch' : 'list';
    let uri = collectionPath(def, ns) + (name !== undefined ? `/${name}` : '');
    if (verb === 'list') uri += variant % 2 === 0 ? '?limit=500' : '';
    if (verb === 'watch') uri += `?watch=true&timeoutSeconds=${30 + variant}`;
    if (!def.namespaced && variant > 0 && !named) uri += `${uri.includes('?') ? '&' : '?'}page=${variant}`;
    return { verb, requestURI: uri, objectRef: objectRef(def, ns, name), resource: def.resource, decision: null };
  };
  for (const key of chosen) push(resourceTarget(key, 0));
  let variant = 1;
  for (let made = 0; made < extra; variant++) {
    if (push(resourceTarget(chosen[made % chosen.length], variant))) made++;
  }
  const paths = rng.shuffle([...NON_RESOURCE_DISCOVERY]);
  for (let i = 0; i < nonResource; i++) {
    push({ verb: 'get', requestURI: paths[i % paths.length] + (i >= paths.length ? `?timeout=${i}s` : ''), resource: null, decision: null });
  }
  return targets;
}

/** Assigns decisions: 'both' gives allow to the first and then every third target, forbid to the rest. */
function decide(targets: Target[], mode: 'both' | 'allow' | 'forbid' | 'allow+empty'): Target[] {
  return targets.map((t, i) => {
    let decision: Decision;
    if (mode === 'allow') decision = 'allow';
    else if (mode === 'forbid') decision = 'forbid';
    else {
      const allow = t.resource === null || i % 3 === 0;
      decision = allow ? 'allow' : mode === 'both' ? 'forbid' : '';
    }
    return { ...t, decision };
  });
}

/**
 * Spreads `count` events over the targets (each target at least once when count allows) at
 * distinct-enough times in [fromMs, toMs).
 */
function spread(ctx: KindContext, targets: Target[], count: number, fromMs: number, toMs: number, cluster = ctx.cluster): AttackEvent[] {
  const order = ctx.rng.shuffle([...targets]);
  const events: AttackEvent[] = [];
  for (let i = 0; i < count; i++) {
    const target = i < order.length ? order[i] : ctx.rng.pick(targets);
    const timeMs = fromMs + Math.floor(((i + ctx.rng.float()) * (toMs - fromMs)) / count);
    events.push({ timeMs, micros: ctx.rng.int(1000), cluster, target });
  }
  return events;
}

function expectFor(actor: AttackActor, ends: number[], suppressed: number): KindBuild['expected'] {
  const map: KindBuild['expected'] = new Map();
  for (const ip of distinctKeyIps(actor.ips)) map.set(ip, { ends, suppressed });
  return map;
}

function distinctKeyIps(ips: string[] | null): Array<string | null> {
  return ips === null || ips.length === 0 ? [null] : [...new Set(ips)];
}

/** One burst inside a single pane: matches in the 6 windows that contain the pane. */
function singleBurst(
  resources: number,
  uris: number,
  count: number,
  decisions: 'both' | 'allow' | 'forbid' | 'allow+empty',
  nonResource = 0,
): (ctx: KindContext) => KindBuild {
  return (ctx) => {
    const targets = decide(probeTargets(ctx.rng, resources, uris - resources - nonResource, nonResource), decisions);
    const from = ctx.a + ctx.rng.range(1_000, 8_000);
    const events = spread(ctx, targets, count, from, from + ctx.rng.range(20_000, 50_000));
    const match = decisions === 'both' && uris > 5 && resources > 3 && count < 75;
    return {
      events,
      description: `${count} events, ${uris} URIs (${nonResource} non-resource), ${resources} resources, decisions ${decisions}, within one minute`,
      expected: expectFor(ctx.actor, match ? [ctx.a + HOP_MS] : [], match ? 5 : 0),
    };
  };
}

const P = HOP_MS;
const W = WINDOW_MS;

const KINDS: KindDef[] = [
  { kind: 'baseline', panes: 1, build: singleBurst(5, 8, 30, 'both') },
  { kind: 'uris-5', panes: 1, build: singleBurst(4, 5, 20, 'both') },
  { kind: 'uris-6', panes: 1, build: singleBurst(4, 6, 20, 'both') },
  { kind: 'resources-3', panes: 1, build: singleBurst(3, 12, 30, 'both') },
  { kind: 'resources-4', panes: 1, build: singleBurst(4, 12, 30, 'both') },
  { kind: 'count-74', panes: 1, build: singleBurst(5, 10, 74, 'both') },
  { kind: 'count-75', panes: 1, build: singleBurst(5, 10, 75, 'both') },
  { kind: 'decision-allow-only', panes: 1, build: singleBurst(6, 10, 30, 'allow') },
  { kind: 'decision-forbid-only', panes: 1, build: singleBurst(6, 10, 30, 'forbid') },
  { kind: 'decision-empty-string', panes: 1, build: singleBurst(6, 10, 30, 'allow+empty') },
  { kind: 'nonresource-uris-6', panes: 1, build: singleBurst(4, 6, 25, 'both', 2) },
  { kind: 'nonresource-resources-3', panes: 1, build: singleBurst(3, 10, 25, 'both', 7) },
  { kind: 'ipv6-attacker', panes: 1, actor: 'ipv6', build: singleBurst(5, 9, 35, 'both') },
  { kind: 'anonymous-probe', panes: 1, actor: 'anonymous', build: singleBurst(6, 12, 40, 'both', 3) },
  { kind: 'null-ip-missing', panes: 1, actor: 'null-ip', build: singleBurst(5, 8, 30, 'both') },
  { kind: 'null-ip-empty-array', panes: 1, actor: 'empty-ips', build: singleBurst(5, 8, 30, 'both') },
  { kind: 'multi-ip-proxy', panes: 1, actor: 'multi-ip', build: singleBurst(5, 8, 30, 'both') },
  { kind: 'multi-ip-duplicate-74', panes: 1, actor: 'dup-ip', build: singleBurst(5, 10, 74, 'both') },
  {
    kind: 'null-username',
    panes: 1,
    actor: 'null-username',
    build: (ctx) => nullUsername(ctx, 60),
  },
  {
    kind: 'null-username-count-75',
    panes: 1,
    actor: 'null-username',
    build: (ctx) => nullUsername(ctx, 75),
  },
  {
    // Events on the first 3 resources carry [A, B]; the rest only [A]. A alerts, B (3 resources) must not.
    kind: 'multi-ip-partial',
    panes: 1,
    actor: 'multi-ip',
    build: (ctx) => {
      const [ipA, ipB] = ctx.actor.ips as string[];
      const targets = decide(probeTargets(ctx.rng, 5, 3, 0), 'both');
      const shared = new Set(targets.slice(0, 3).map((t) => t.resource));
      const from = ctx.a + 5_000;
      const events = spread(ctx, targets, 30, from, from + 45_000).map((e) => ({
        ...e,
        ips: shared.has(e.target.resource) ? [ipA, ipB] : [ipA],
      }));
      return {
        events,
        description: 'attacker behind a proxy for some requests only: A sees all 5 resources, B only 3',
        expected: new Map([
          [ipA, { ends: [ctx.a + P], suppressed: 5 }],
          [ipB, { ends: [], suppressed: 0 }],
        ]),
      };
    },
  },
  {
    // 40 events with [A, B] then 35 with [A]: A counts 75 (no alert), B counts 40 (alert).
    kind: 'multi-ip-count-75',
    panes: 1,
    actor: 'multi-ip',
    build: (ctx) => {
      const [ipA, ipB] = ctx.actor.ips as string[];
      const targets = decide(probeTargets(ctx.rng, 5, 3, 0), 'both');
      const from = ctx.a + 3_000;
      const both = spread(ctx, targets, 40, from, from + 25_000).map((e) => ({ ...e, ips: [ipA, ipB] }));
      const onlyA = spread(ctx, targets, 35, from + 25_000, from + 50_000).map((e) => ({ ...e, ips: [ipA] }));
      return {
        events: [...both, ...onlyA],
        description: 'each [A,B] event counts fully in both groups: A reaches 75 events, B has 40',
        expected: new Map([
          [ipA, { ends: [], suppressed: 0 }],
          [ipB, { ends: [ctx.a + P], suppressed: 5 }],
        ]),
      };
    },
  },
  {
    // Two halves either side of a minute boundary; neither half matches alone.
    kind: 'straddle-minute',
    panes: 2,
    build: (ctx) => {
      const [allowHalf, forbidHalf] = halves(ctx.rng);
      const edge = ctx.a + P;
      const events = [...spread(ctx, allowHalf, 12, edge - 25_000, edge), ...spread(ctx, forbidHalf, 12, edge, edge + 25_000)];
      return {
        events,
        description: 'allow-only half in the minute before a boundary, forbid-only half after it',
        expected: expectFor(ctx.actor, [edge + P], 4),
      };
    },
  },
  {
    // First event exactly at t-W, the rest in the window's last minute: only window t alerts.
    kind: 'edge-left-inclusive',
    panes: 6,
    build: (ctx) => {
      const [first, ...rest] = edgeTargets(ctx.rng);
      const events = [
        { timeMs: ctx.a, micros: 0, cluster: ctx.cluster, target: first },
        ...spread(ctx, rest, 20, ctx.a + W - 40_000, ctx.a + W - 1_000),
      ];
      return {
        events,
        description: 'one essential event exactly at the window start t-W (inclusive), the rest just before t',
        expected: expectFor(ctx.actor, [ctx.a + W], 0),
      };
    },
  },
  {
    // Last essential event at t - 1 µs (floored to t - 1 ms): only window t alerts.
    kind: 'edge-right-inclusive',
    panes: 6,
    build: (ctx) => {
      const [last, ...rest] = edgeTargets(ctx.rng);
      const events = [
        ...spread(ctx, rest, 20, ctx.a, ctx.a + 40_000),
        { timeMs: ctx.a + W - 1, micros: 999, cluster: ctx.cluster, target: last },
      ];
      return {
        events,
        description: 'one essential event at t-1ms (…59.999999Z), the rest at the window start',
        expected: expectFor(ctx.actor, [ctx.a + W], 0),
      };
    },
  },
  {
    // Last essential event exactly at t: it belongs to the next windows, so nothing matches.
    kind: 'edge-right-exclusive',
    panes: 7,
    build: (ctx) => {
      const [last, ...rest] = edgeTargets(ctx.rng);
      const events = [
        ...spread(ctx, rest, 20, ctx.a + 1, ctx.a + 40_000),
        { timeMs: ctx.a + W, micros: 0, cluster: ctx.cluster, target: last },
      ];
      return {
        events,
        description: 'one essential event exactly at t (exclusive end): no window holds everything',
        expected: expectFor(ctx.actor, [], 0),
      };
    },
  },
  {
    kind: 'spread-8min-no-match',
    panes: 8,
    build: (ctx) => {
      const [allowHalf, forbidHalf] = halves(ctx.rng);
      const events = [
        ...spread(ctx, allowHalf, 10, ctx.a, ctx.a + 50_000),
        ...spread(ctx, forbidHalf, 10, ctx.a + 7 * P, ctx.a + 7 * P + 50_000),
      ];
      return { events, description: 'two halves 7 minutes apart: no 6-minute window holds both', expected: expectFor(ctx.actor, [], 0) };
    },
  },
  {
    // A (allow) at +0, B (forbid) at +4 min, C (allow) at +8 min: A+B match at +5/+6, B+C at +9/+10.
    kind: 'spread-9min-match-once',
    panes: 9,
    build: (ctx) => {
      const targets = probeTargets(ctx.rng, 6, 6, 0);
      const byResource = (from: number): Target[] => targets.filter((t) => {
        const i = targets.findIndex((u) => u.resource === t.resource);
        return i >= from && i < from + 2;
      });
      const partA = decide(byResource(0), 'allow');
      const partB = decide(byResource(2), 'forbid');
      const partC = decide(byResource(4), 'allow');
      const events = [
        ...spread(ctx, partA, 8, ctx.a, ctx.a + 50_000),
        ...spread(ctx, partB, 8, ctx.a + 4 * P, ctx.a + 4 * P + 50_000),
        ...spread(ctx, partC, 8, ctx.a + 8 * P, ctx.a + 8 * P + 50_000),
      ];
      return {
        events,
        description: 'three parts (4 URIs, 2 resources each) over 9 minutes: matches at +5,+6,+9,+10 min, alerts once, 3 suppressed',
        expected: expectFor(ctx.actor, [ctx.a + 5 * P], 3),
      };
    },
  },
  {
    kind: 'repeat-after-3min',
    panes: 4,
    build: (ctx) => {
      const targets = decide(probeTargets(ctx.rng, 5, 3, 0), 'both');
      const events = [
        ...spread(ctx, targets, 30, ctx.a + 2_000, ctx.a + 42_000),
        ...spread(ctx, targets, 30, ctx.a + 3 * P + 2_000, ctx.a + 3 * P + 42_000),
      ];
      return {
        events,
        description: 'same burst again 3 minutes later: windows +1..+9 min match; +2..+6 suppressed, +7 re-alerts, +8,+9 suppressed',
        expected: expectFor(ctx.actor, [ctx.a + P, ctx.a + 7 * P], 7),
      };
    },
  },
  {
    kind: 'repeat-after-10min',
    panes: 11,
    build: (ctx) => {
      const targets = decide(probeTargets(ctx.rng, 5, 3, 0), 'both');
      const events = [
        ...spread(ctx, targets, 30, ctx.a + 2_000, ctx.a + 42_000),
        ...spread(ctx, targets, 30, ctx.a + 10 * P + 2_000, ctx.a + 10 * P + 42_000),
      ];
      return {
        events,
        description: 'same burst again 10 minutes later: suppression has expired, so both alert',
        expected: expectFor(ctx.actor, [ctx.a + P, ctx.a + 11 * P], 10),
      };
    },
  },
  {
    // delete/deletecollection/proxy/connect on other resources would push it over the thresholds.
    kind: 'filtered-verbs',
    panes: 1,
    build: (ctx) => {
      const targets = decide(probeTargets(ctx.rng, 7, 3, 0), 'both');
      const counted = targets.filter((t) => countedResources(targets).has(t.resource));
      const from = ctx.a + 4_000;
      const noise = targets.filter((t) => !countedResources(targets).has(t.resource));
      const verbs = ['delete', 'deletecollection', 'proxy', 'connect'];
      const events = [
        ...spread(ctx, counted, 20, from, from + 40_000),
        ...spread(ctx, noise, 12, from, from + 40_000).map((e, i) => filteredVerb(e, verbs[i % verbs.length], `victim-${i}`)),
      ];
      return {
        events,
        description: '3 resources with get/list/watch plus delete/deletecollection/proxy/connect on 4 more: filtered out',
        expected: expectFor(ctx.actor, [], 0),
      };
    },
  },
  {
    // RequestReceived/ResponseStarted/Panic stages on extra resources must be ignored.
    kind: 'filtered-stages',
    panes: 1,
    build: (ctx) => {
      const targets = decide(probeTargets(ctx.rng, 7, 3, 0), 'both');
      const counted = targets.filter((t) => countedResources(targets).has(t.resource));
      const noise = targets.filter((t) => !countedResources(targets).has(t.resource));
      const stages: Stage[] = ['RequestReceived', 'ResponseStarted', 'Panic'];
      const from = ctx.a + 4_000;
      const events = [
        ...spread(ctx, counted, 20, from, from + 40_000),
        ...spread(ctx, noise, 12, from, from + 40_000).map((e, i) => ({ ...e, stage: stages[i % stages.length] })),
      ];
      return {
        events,
        description: '3 resources at ResponseComplete, 4 more only at RequestReceived/ResponseStarted/Panic',
        expected: expectFor(ctx.actor, [], 0),
      };
    },
  },
  {
    // 40 requests, each logged at RequestReceived and ResponseComplete: 80 raw events, count 40.
    kind: 'stage-twins-count',
    panes: 1,
    build: (ctx) => {
      const targets = decide(probeTargets(ctx.rng, 5, 4, 0), 'both');
      const from = ctx.a + 4_000;
      const complete = spread(ctx, targets, 40, from, from + 45_000).map((e) => ({ ...e, auditID: ctx.rng.uuid() }));
      const received = complete.map((e): AttackEvent => ({ ...e, stage: 'RequestReceived' }));
      return {
        events: [...received, ...complete],
        description: '40 requests logged at two stages (80 raw events); only the 40 ResponseComplete count',
        expected: expectFor(ctx.actor, [ctx.a + P], 5),
      };
    },
  },
  {
    // Same (user, IP) in two clusters: the rule groups across data streams.
    kind: 'cross-cluster',
    panes: 1,
    build: (ctx) => {
      const [allowHalf, forbidHalf] = halves(ctx.rng);
      const events = [
        ...spread(ctx, allowHalf, 10, ctx.a + 2_000, ctx.a + 25_000, ctx.cluster),
        ...spread(ctx, forbidHalf, 10, ctx.a + 30_000, ctx.a + 55_000, ctx.otherCluster),
      ];
      return {
        events,
        description: 'allow half in one cluster, forbid half in another; one group, two data_stream namespaces',
        expected: expectFor(ctx.actor, [ctx.a + P], 5),
      };
    },
  },
];

/** Re-targets a probe to a verb the rule filters out, with the URI shape that verb has. */
function filteredVerb(e: AttackEvent, verb: string, name: string): AttackEvent {
  const base = e.target.requestURI.split('?')[0];
  const ref = e.target.objectRef ?? {};
  const named = (sub?: string): Record<string, string> => {
    const { resource, namespace, apiGroup, apiVersion } = ref;
    const out: Record<string, string> = { resource };
    if (namespace !== undefined) out.namespace = namespace;
    out.name = name;
    if (apiGroup !== undefined) out.apiGroup = apiGroup;
    out.apiVersion = apiVersion;
    if (sub !== undefined) out.subresource = sub;
    return out;
  };
  switch (verb) {
    case 'deletecollection':
      return { ...e, verb, target: { ...e.target, requestURI: base } };
    case 'connect':
      return { ...e, verb, target: { ...e.target, requestURI: `${base}/${name}/portforward`, objectRef: named('portforward') } };
    default:
      return { ...e, verb, target: { ...e.target, requestURI: `${base}/${name}`, objectRef: named() } };
  }
}

/** The first three distinct resources of a target list (the "counted" part of noise kinds). */
function countedResources(targets: Target[]): Set<string | null> {
  return new Set([...new Set(targets.map((t) => t.resource))].slice(0, 3));
}

/** Two disjoint halves of 3 URIs on 2 resources each: allow-only and forbid-only. */
function halves(rng: Rng): [Target[], Target[]] {
  const targets = probeTargets(rng, 4, 2, 0);
  const resources = [...new Set(targets.map((t) => t.resource))];
  const first = new Set(resources.slice(0, 2));
  return [
    decide(targets.filter((t) => first.has(t.resource)), 'allow'),
    decide(targets.filter((t) => !first.has(t.resource)), 'forbid'),
  ];
}

/**
 * Targets for the edge kinds: element 0 is essential (the only forbid, on its own resource and
 * URI); the rest have 5 URIs on 3 resources, all allowed.
 */
function edgeTargets(rng: Rng): Target[] {
  const targets = probeTargets(rng, 4, 2, 0);
  const lastResource = targets[3].resource;
  const essential = { ...targets[3], decision: 'forbid' as const };
  const rest = decide(targets.filter((t) => t.resource !== lastResource), 'allow');
  return [essential, ...rest];
}

function nullUsername(ctx: KindContext, count: number): KindBuild {
  const targets = decide(probeTargets(ctx.rng, 5, 3, 1), 'both');
  const unauthorized = 10;
  const from = ctx.a + 3_000;
  const events = [
    ...spread(ctx, targets, count - unauthorized, from, from + 40_000),
    // Expired token retries: 401, no decision annotation, still counted by count().
    ...spread(ctx, targets, unauthorized, from, from + 40_000).map((e) => ({ ...e, target: { ...e.target, decision: null } })),
  ];
  const match = count < 75;
  return {
    events,
    description: `no user.username; ${count} events of which ${unauthorized} are 401s without annotations`,
    expected: expectFor(ctx.actor, match ? [ctx.a + P] : [], match ? 5 : 0),
  };
}

/** Attacker address pools: documentation ranges, never used by background actors. */
function attackerIp(n: number, v6 = false): string {
  if (v6) return `2001:db8:bad:${(n >> 16).toString(16)}::${(n & 0xffff).toString(16)}`;
  const pools = ['203.0.113', '198.51.100', '192.0.2'];
  if (n < pools.length * 250) return `${pools[Math.floor(n / 250)]}.${(n % 250) + 1}`;
  const m = n - pools.length * 250;
  return `100.${64 + Math.floor(m / 65_000)}.${Math.floor((m % 65_000) / 250)}.${(m % 250) + 1}`;
}

const ATTACK_UAS = [
  'kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819',
  'curl/8.5.0',
  'python-requests/2.31.0',
  'Go-http-client/1.1',
  'kube-hunter/0.6.8',
  'Python/3.11 aiohttp/3.9.3',
];

function makeAttackActor(j: number, rng: Rng, variant: KindDef['actor'], nextIp: (v6?: boolean) => string): AttackActor {
  const styles = [
    (): [string, string[]] => {
      const ns = rng.pick(APP_NAMESPACES);
      return [`system:serviceaccount:${ns}:${rng.pick(APPS)}-${j}`, SA_GROUPS(ns)];
    },
    (): [string, string[]] => [`oidc:contractor${j}@example.org`, ['oidc:contractors', 'system:authenticated']],
    (): [string, string[]] => [`system:node:rogue-node-${j}`, ['system:nodes', 'system:authenticated']],
  ];
  let [username, groups] = styles[j % styles.length]() as [string | null, string[]];
  let ips: string[] | null = [nextIp()];
  switch (variant) {
    case 'null-username':
      username = null;
      groups = [];
      break;
    case 'anonymous':
      username = 'system:anonymous';
      groups = ['system:unauthenticated'];
      break;
    case 'null-ip':
      ips = null;
      break;
    case 'empty-ips':
      ips = [];
      break;
    case 'multi-ip':
      ips = [ips[0], nextIp()];
      break;
    case 'dup-ip':
      ips = [ips[0], ips[0]];
      break;
    case 'ipv6':
      ips = [nextIp(true)];
      break;
    default:
  }
  return { username, groups, ips, userAgent: ATTACK_UAS[j % ATTACK_UAS.length] };
}

function attackReq(ev: AttackEvent): Req {
  const t = ev.target;
  const verb = ev.verb ?? t.verb;
  const code = t.decision === null ? 401 : t.decision === 'allow' ? (verb === 'create' ? 201 : 200) : 403;
  return {
    verb,
    requestURI: t.requestURI,
    objectRef: t.objectRef,
    code,
    decision: t.decision,
    reason:
      t.decision === 'allow'
        ? t.resource === null
          ? rbacReason('ClusterRoleBinding', 'system:discovery', 'system:discovery', 'Group "system:authenticated"')
          : rbacReason('RoleBinding', 'view', 'view', 'Group "system:authenticated"')
        : '',
  };
}

interface Plan {
  attacks: AttackSpec[];
  /** Attack events, sorted by time. */
  events: GeneratedEvent[];
  times: number[];
}

function resolved(opts: GeneratorOptions): Required<GeneratorOptions> {
  return {
    seed: opts.seed,
    events: opts.events,
    clusters: Math.max(1, opts.clusters ?? DEFAULTS.clusters),
    startMs: opts.startMs ?? DEFAULTS.startMs,
    eventsPerSecond: opts.eventsPerSecond ?? DEFAULTS.eventsPerSecond,
    attacks: opts.attacks ?? DEFAULTS.attacks,
    actorsScale: opts.actorsScale ?? DEFAULTS.actorsScale,
    maxJitterMs: Math.max(0, opts.maxJitterMs ?? DEFAULTS.maxJitterMs),
  };
}

function buildPlan(options: GeneratorOptions): Plan {
  const opts = resolved(options);
  const rng = new Rng(opts.seed, 2);
  let ipCounter = 0;
  let ip6Counter = 0;
  const nextIp = (v6 = false): string => (v6 ? attackerIp(ip6Counter++, true) : attackerIp(ipCounter++));

  // Build every attack relative to base 0, then keep those that fit the budget and the stream.
  interface Draft {
    def: KindDef;
    index: number;
    actor: AttackActor;
    build: KindBuild;
    cluster: string;
  }
  const drafts: Draft[] = [];
  for (let j = 0; j < opts.attacks; j++) {
    const def = KINDS[j % KINDS.length];
    const actor = makeAttackActor(j, rng, def.actor, nextIp);
    const cluster = clusterName(j % opts.clusters);
    const otherCluster = clusterName((j + 1) % opts.clusters);
    const build = def.build({ rng, a: 0, cluster, otherCluster, actor });
    drafts.push({ def, index: j, actor, build, cluster });
  }
  const budget = Math.floor(opts.events * ATTACK_EVENT_SHARE);
  let attackEventCount = 0;
  const kept: Draft[] = [];
  for (const d of drafts) {
    if (attackEventCount + d.build.events.length > budget) continue;
    kept.push(d);
    attackEventCount += d.build.events.length;
  }

  // Background time advances 1000/eps ms per background event; attacks must end inside it.
  const backgroundMs = ((opts.events - attackEventCount) * 1000) / opts.eventsPerSecond;
  const firstPane = Math.ceil(opts.startMs / P) + 1;
  const endPane = Math.floor((opts.startMs + backgroundMs) / P) - 1;
  const fitting = kept.filter((d) => firstPane + d.def.panes <= endPane);
  const maxPanes = Math.max(0, ...fitting.map((d) => d.def.panes));
  const span = Math.max(0, endPane - maxPanes - firstPane);

  const attacks: AttackSpec[] = [];
  const planned: Array<{ e: AttackEvent; actor: AttackActor; order: number; auditID: string }> = [];
  fitting.forEach((d, k) => {
    const pane = firstPane + (fitting.length > 1 ? Math.floor((k * span) / (fitting.length - 1)) : 0);
    const shift = pane * P;
    const times = d.build.events.map((e) => e.timeMs + shift);
    const id = `attack-${String(d.index).padStart(3, '0')}-${d.def.kind}`;
    const expected: ExpectedGroup[] = [...d.build.expected].map(([sourceIp, x]) => ({
      username: d.actor.username,
      sourceIp,
      alertWindowEnds: x.ends.map((t) => t + shift),
      suppressed: x.suppressed,
    }));
    attacks.push({
      id,
      cluster: d.cluster,
      username: d.actor.username,
      sourceIps: d.actor.ips ?? [],
      startMs: Math.min(...times),
      endMs: Math.max(...times),
      kind: d.def.kind,
      expectAlert: expected.some((g) => g.alertWindowEnds.length > 0),
      description: d.build.description,
      eventCount: d.build.events.length,
      expected,
    });
    d.build.events.forEach((e) => {
      planned.push({ e: { ...e, timeMs: e.timeMs + shift }, actor: d.actor, order: planned.length, auditID: e.auditID ?? rng.uuid() });
    });
  });

  planned.sort((x, y) => x.e.timeMs - y.e.timeMs || x.order - y.order);
  const events = planned.map(({ e, actor, auditID }): GeneratedEvent => {
    const identity: Identity = {
      username: actor.username,
      groups: actor.groups.length > 0 ? actor.groups : undefined,
      sourceIPs: e.ips !== undefined ? e.ips : actor.ips,
      userAgent: actor.userAgent,
    };
    const stage = e.stage ?? 'ResponseComplete';
    const latencyMs = 2 + ((e.micros * 7) % 40);
    return { cluster: e.cluster, event: buildEvent(identity, attackReq(e), stage, { receivedMs: e.timeMs, micros: e.micros, latencyMs }, auditID) };
  });
  return { attacks, events, times: planned.map((p) => p.e.timeMs) };
}

/** The attacks `generateAuditStream` plants for these options, with their expected alerts. */
export function planAttacks(opts: GeneratorOptions): AttackSpec[] {
  return buildPlan(opts).attacks;
}

/** Every attack kind the generator knows, in planning order. */
export const ATTACK_KINDS: readonly string[] = KINDS.map((k) => k.kind);

// ---------------------------------------------------------------------------------------------
// The stream.

/**
 * Yields `opts.events` events. Background events are produced in ticks; each tick has a nominal
 * time T and its events have requestReceivedTimestamp in [T - maxJitterMs, T]. Attack events are
 * emitted at their exact time, between the ticks around it, so disorder never exceeds maxJitterMs.
 */
export function* generateAuditStream(options: GeneratorOptions): Generator<GeneratedEvent> {
  const opts = resolved(options);
  const plan = buildPlan(opts);
  const rng = new Rng(opts.seed, 1);

  const humans = makeHumans(rng, opts.clusters, opts.actorsScale);
  const actors: Actor[] = [];
  for (let c = 0; c < opts.clusters; c++) {
    const cluster = makeCluster(rng, c, opts.actorsScale);
    const clusterWeight = CLUSTER_WEIGHTS[c] ?? 0.3;
    for (const a of makeActors(rng, cluster, opts.actorsScale, humans)) {
      a.weight *= clusterWeight;
      actors.push(a);
    }
  }
  const cumulative: number[] = [];
  let total = 0;
  for (const a of actors) cumulative.push((total += a.weight));

  const intervalMs = 1000 / opts.eventsPerSecond;
  let nominal = opts.startMs;
  let attackIdx = 0;
  const pending: GeneratedEvent[] = [];

  for (let emitted = 0; emitted < opts.events; emitted++) {
    if (pending.length === 0) {
      if (attackIdx < plan.events.length && plan.times[attackIdx] <= nominal) {
        yield plan.events[attackIdx++];
        continue;
      }
      backgroundTick(rng, actors, cumulative, total, nominal, opts, pending);
      nominal += pending.length * intervalMs;
    }
    yield pending.shift() as GeneratedEvent;
  }
}

function backgroundTick(
  rng: Rng,
  actors: Actor[],
  cumulative: number[],
  total: number,
  nominal: number,
  opts: Required<GeneratorOptions>,
  out: GeneratedEvent[],
): void {
  const actor = actors[lowerBound(cumulative, rng.float() * total)];
  const op = rng.weighted(actor.ops);
  const req = opRequest(rng, actor, op);
  const ips = actor.ipChoices.length === 1 ? actor.identity.sourceIPs : rng.weighted(actor.ipChoices).ips;
  let identity: Identity = ips === actor.identity.sourceIPs ? actor.identity : { ...actor.identity, sourceIPs: ips };
  if (actor.cls === 'admin' && rng.chance(0.03)) {
    // `kubectl --as`: the rule still groups by the impersonating user.
    const ns = actor.cluster.namespaces[8];
    identity = { ...identity, impersonatedUser: { username: `system:serviceaccount:${ns}:default`, groups: SA_GROUPS(ns) } };
  }
  // Skewed toward small delays: most events arrive nearly in order, a few up to maxJitterMs late.
  const u = rng.float();
  const jitter = Math.min(Math.floor(opts.maxJitterMs * u * u * u * u), Math.floor(nominal - opts.startMs));
  const receivedMs = Math.floor(nominal) - Math.max(0, jitter);
  const micros = rng.int(1000);
  const auditID = rng.uuid();
  for (const stage of requestStages(rng, actor, req)) {
    const latencyMs = stage === 'RequestReceived' ? 0 : req.verb === 'watch' ? rng.range(50, 1500) : rng.range(1, 60);
    out.push({ cluster: actor.cluster.name, event: buildEvent(identity, req, stage, { receivedMs, micros, latencyMs }, auditID) });
  }
}

function lowerBound(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
