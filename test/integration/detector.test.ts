import assert from 'node:assert/strict';
import path from 'node:path';
import Redis from 'ioredis';
import { Alert } from '../../src/alerts/alert';
import { CompiledPlan } from '../../src/detect/compiled-plan';
import { CommittedPosition, Detector, DetectorRecord, decodeCheckpoints, encodeCheckpoints } from '../../src/detect/detector';
import { groupKafkaKey } from '../../src/detect/group-id';
import { normalizeEvent } from '../../src/ingest/normalize';
import { loadRuleFile } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { RedisState } from '../../src/state/redis-state';
import { CommitInput } from '../../src/state/detector-state';
import { DependencyError } from '../../src/ingest/errors';
import { packageRoot } from '../../src/util/package-root';
import { GeneratedEvent, generateAuditStream } from '../helpers/audit-generator';
import { canonicalKade, canonicalOracle, diffAlerts } from '../helpers/compare-alerts';
import { oracleAlerts } from '../helpers/esql-oracle';
import { REDIS_URL, deleteByPrefix, uniquePrefix } from '../helpers/redis';
import { mulberry32 } from '../helpers/audit-generator';
import { MemoryKeyedRecords } from '../helpers/keyed-records';

const PARTITIONS = 4;

/** Routes raw events the way the router does, onto PARTITIONS in-memory partitions. */
function route(plan: CompiledPlan, events: GeneratedEvent[]): DetectorRecord[][] {
  const parts: DetectorRecord[][] = Array.from({ length: PARTITIONS }, () => []);
  for (const { cluster, event } of events) {
    const { record, eventTime } = normalizeEvent(event, { timeField: 'requestReceivedTimestamp', namespace: cluster });
    if (!plan.accepts(record)) continue;
    const projected = plan.project(record);
    for (const group of plan.groupsOf(record)) {
      const key = groupKafkaKey(group);
      let h = 0;
      for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
      const p = parts[h % PARTITIONS];
      p.push({ offset: p.length, eventTime, group, record: projected });
    }
  }
  return parts;
}

class MemorySink {
  readonly alerts: Alert[] = [];
  failNext = false;
  async publish(alerts: Alert[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('injected publish failure');
    }
    this.alerts.push(...alerts);
  }
}

/** RedisState whose closing commit fails (as Redis going down would) every 3rd time it follows published alerts. */
class FlakyCommitState extends RedisState {
  private withAlerts = 0;
  constructor(redis: Redis, keys: KeyBuilder, plan: CompiledPlan, ttl: number, private readonly flaky: boolean) {
    super(redis, keys, plan, ttl);
  }

  override async commit(partition: number, input: CommitInput): Promise<void> {
    if (this.flaky && input.alerted.length > 0 && ++this.withAlerts % 3 === 1) {
      throw new DependencyError('redis', 'injected commit failure');
    }
    return super.commit(partition, input);
  }
}

describe('detector on real Redis against the ES|QL oracle', function () {
  this.timeout(120_000);
  let redis: Redis;
  let prefix: string;
  before(() => { redis = new Redis(REDIS_URL); });
  after(async () => { await redis.quit(); });
  beforeEach(() => { prefix = uniquePrefix('det'); });
  afterEach(async () => { await deleteByPrefix(redis, prefix); });

  const plan = (): CompiledPlan => loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));

  async function runDetector(opts: {
    events: number; seed: number; crashEvery?: number; failPublish?: boolean;
    /** Redis fails the closing commit right after alerts were published (every 3rd such commit). */
    failCommitAfterPublish?: boolean;
    /** Redis loses every key of the test after these batches: under the running detector or with a new owner. */
    loseRedisAt?: number[]; lose?: 'running' | 'new-owner' | 'down-then-empty';
    /** Write-behind interval of the detector (0: every batch is written). */
    flushIntervalMs?: number;
    /** After a failed batch the same instance gets it again (what kafkajs does), instead of a restart. */
    retrySameInstance?: boolean;
    /** Cap of the (group, pane) stats kept in memory (DetectorOptions.memoryDecisionsMax). */
    memoryDecisionsMax?: number;
    /**
     * After every batch, report where the consumer stands (notePosition), as the stage does on
     * kafkajs' END_BATCH_PROCESS: also for a batch that sent the consumer back, which kafkajs
     * reports after eachBatch returns although it was fetched before the seek.
     */
    reportPositions?: boolean;
  }): Promise<{
    alerts: Alert[]; late: number; events: GeneratedEvent[]; rebuilds: number; replayed: number;
    /** Records each rebuild must replay (from its first offset up to where it was found). */
    toReplay: number;
    /** Candidate windows evaluated in Redis / skipped in memory, and windows that matched, over every instance. */
    evaluated: number; skipped: number; matched: number;
  }> {
    const p = plan();
    const events = [...generateAuditStream({ seed: opts.seed, events: opts.events, attacks: 25 })];
    const parts = route(p, events);
    const keyedRecords = new MemoryKeyedRecords(p.id, (i) => parts[i]);
    const sink = new MemorySink();
    let wall = 0;
    let rebuilds = 0;
    let replayed = 0;
    let toReplay = 0;
    let matched = 0;
    const instances: Detector[] = [];
    // What Kafka would hold: the committed offset and checkpoint metadata of each partition.
    const committed = new Map<number, CommittedPosition>();
    const make = (): Detector => {
      const d = new Detector(p, new FlakyCommitState(redis, new KeyBuilder(prefix, p.plan.stateKey), p, 3600, opts.failCommitAfterPublish === true), sink, {
        latenessMs: 30_000, idleTimeoutMs: 10_000, suppressionMs: 360_000, now: () => wall, flushIntervalMs: opts.flushIntervalMs ?? 0,
        memoryDecisionsMax: opts.memoryDecisionsMax, keyedRecords,
      }, { rebuild: (_p, from, until) => { rebuilds++; toReplay += until - from; }, replayed: (_p, n) => { replayed += n; }, matched: (a, s) => { matched += a + s; } });
      d.assign(decodedCommitted());
      instances.push(d);
      return d;
    };
    // Through the encoding the stage uses, as a new process would read it from Kafka.
    const decodedCommitted = (): Map<number, CommittedPosition> => new Map([...committed].map(([i, c]) => [i, {
      offset: c.offset, meta: c.meta === null ? null : decodeCheckpoints(encodeCheckpoints(new Map([[p.id, c.meta]]))).get(p.id) ?? null,
    }]));
    let detector = make();
    const rnd = mulberry32(opts.seed);
    // cursor: the consumer's fetch position; a new instance starts from the committed offsets.
    const cursor = parts.map(() => 0);
    const restart = (): void => {
      detector = make();
      for (let i = 0; i < PARTITIONS; i++) cursor[i] = committed.get(i)?.offset ?? 0;
    };
    const commit = (i: number, offset: number): void => {
      if (detector.durableFor(i)) committed.set(i, { offset, meta: detector.checkpointMeta(i) });
    };
    let late = 0;
    let batches = 0;
    // Interleave partitions in random-sized batches, as a consumer would; the idle tick at the
    // end may find a partition that Redis lost and send the consumer back.
    for (let round = 0; ; round++) {
      assert.ok(round < 8, 'the run converges');
      while (cursor.some((c, i) => c < parts[i].length)) {
        const i = Math.floor(rnd() * PARTITIONS);
        if (cursor[i] >= parts[i].length) continue;
        const size = 1 + Math.floor(rnd() * 400);
        const batch = parts[i].slice(cursor[i], cursor[i] + size);
        wall = batch[batch.length - 1].eventTime;
        batches++;
        if (opts.failPublish === true && batches % 17 === 0) sink.failNext = true;
        let res;
        try {
          res = await detector.onBatch(i, batch, parts[i].length);
        } catch (err) {
          if (opts.lose === 'down-then-empty' && redis.status !== 'ready') {
            // Redis was down during the flush; it comes back empty. The same instance retries.
            await redis.connect();
            continue;
          }
          assert.match((err as Error).message, /injected (publish|commit) failure/);
          // kafkajs redelivers the failed batch to the same instance; or the process restarts and
          // a new instance (fresh memory) reads from the commits again.
          if (opts.retrySameInstance !== true) restart();
          continue;
        }
        if (opts.reportPositions === true) detector.notePosition(i, batch[batch.length - 1].offset, parts[i].length);
        if (res.seek !== undefined) {
          // The detector found Redis without this partition's state: the consumer seeks back.
          assert.ok(res.seek <= cursor[i], `a rebuild seeks back (${res.seek} <= ${cursor[i]})`);
          cursor[i] = res.seek;
          continue;
        }
        late += res.late;
        if (opts.crashEvery !== undefined && batches % opts.crashEvery === 0) {
          // Crash after the batch's effects but before its offsets were committed: redelivered
          // from the commits, with other batch boundaries (buffered records are lost too).
          restart();
          continue;
        }
        cursor[i] += batch.length;
        if (res.commit !== undefined) {
          assert.equal(res.commit, cursor[i], 'a flush commits the position');
          commit(i, res.commit);
        }
        if (opts.loseRedisAt?.includes(batches)) {
          await deleteByPrefix(redis, prefix);
          if (opts.lose === 'new-owner') {
            restart();
          } else if (opts.lose === 'down-then-empty') {
            redis.disconnect(false);
          } else {
            // A restart drops the connection; the detector must notice before its next write.
            redis.disconnect(true);
            await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
          }
        }
      }
      for (let i = 0; i < PARTITIONS; i++) {
        const seek = await detector.ensure(i);
        assert.equal(seek, null, 'no rebuild pending at the end');
      }
      const tickWall = wall;
      wall += 3_600_000;
      let seeks: Array<{ partition: number; offset: number }> = [];
      for (let t = 0; t < 3 && seeks.length === 0; t++) {
        const r = await detector.onTick();
        seeks = r.seeks;
        for (const c of r.commits) commit(c.partition, c.offset);
        if (r.commits.length === 0 && seeks.length === 0) break;
      }
      if (seeks.length === 0) break;
      wall = tickWall;
      for (const sk of seeks) cursor[sk.partition] = sk.offset;
    }
    for (let i = 0; i < PARTITIONS; i++) assert.ok(detector.durableFor(i), `partition ${i} has nothing left in memory`);
    const evaluated = instances.reduce((n, d) => n + d.evaluatedWindows, 0);
    const skipped = instances.reduce((n, d) => n + d.skippedWindows, 0);
    return { alerts: sink.alerts, late, events, rebuilds, replayed, toReplay, evaluated, skipped, matched };
  }

  function expectOracle(result: { alerts: Alert[]; events: GeneratedEvent[] }): void {
    const oracle = oracleAlerts(result.events, { windowMs: 360_000, hopMs: 60_000, suppressMs: 360_000 });
    const unique = new Map(result.alerts.map((a) => [a.id, a]));
    const diff = diffAlerts([...unique.values()].map(canonicalKade), oracle.alerts.map(canonicalOracle));
    assert.deepEqual(diff, [], diff.join('\n'));
    assert.ok(oracle.alerts.length >= 10, `the stream should hold attacks, oracle found ${oracle.alerts.length}`);
  }

  it('produces exactly the oracle alerts on a generated stream', async () => {
    const r = await runDetector({ events: 30_000, seed: 7 });
    assert.equal(r.late, 0);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicate alert without a crash');
    expectOracle(r);
    // One instance wrote every pane: the windows that cannot match are decided in memory, and
    // Redis evaluates exactly the windows that match.
    assert.ok(r.matched > 0);
    assert.equal(r.evaluated, r.matched, `${r.evaluated} windows evaluated in Redis, ${r.matched} matched`);
    assert.ok(r.skipped > 10 * r.matched, `${r.skipped} windows skipped`);
  });

  it('a new owner evaluates in Redis the windows of panes it did not write, and still finds the oracle alerts', async () => {
    const r = await runDetector({ events: 30_000, seed: 7, crashEvery: 7 });
    expectOracle(r);
    assert.ok(r.evaluated > r.matched, `${r.evaluated} windows evaluated in Redis, ${r.matched} matched`);
  });

  it('with memory decisions capped (or off) the windows go to Redis, and the alerts stay the oracle\'s', async () => {
    const capped = await runDetector({ events: 30_000, seed: 7, memoryDecisionsMax: 400 });
    expectOracle(capped);
    assert.ok(capped.skipped > 0 && capped.evaluated > capped.matched, `${capped.evaluated} evaluated, ${capped.skipped} skipped`);
    // A second run of the same stream: on a clean Redis.
    await deleteByPrefix(redis, prefix);
    const off = await runDetector({ events: 30_000, seed: 7, memoryDecisionsMax: 0 });
    expectOracle(off);
    // Off, only windows without data on the partition (a recent match's later windows) are skipped.
    assert.ok(off.skipped < capped.skipped, `${off.skipped} skipped off, ${capped.skipped} capped`);
    assert.ok(off.evaluated > 10 * off.matched, `${off.evaluated} evaluated, ${off.matched} matched`);
  });

  it('counts nothing twice when batches are replayed after crashes', async () => {
    const r = await runDetector({ events: 30_000, seed: 11, crashEvery: 5 });
    assert.equal(r.late, 0);
    expectOracle(r);
  });

  it('a closing commit that fails after its alerts were published: the same instance does not send them again', async () => {
    const r = await runDetector({ events: 30_000, seed: 19, failCommitAfterPublish: true, retrySameInstance: true });
    expectOracle(r);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, `each alert once (${ids.length} sent, ${new Set(ids).size} ids)`);
  });

  it('re-sends the same alert ids when publishing fails, and loses none', async () => {
    const r = await runDetector({ events: 30_000, seed: 13, failPublish: true });
    expectOracle(r);
  });

  it('rebuilds by replay when Redis restarts empty under a running detector: same alerts, each once', async () => {
    const r = await runDetector({ events: 30_000, seed: 17, loseRedisAt: [50, 100], lose: 'running' });
    assert.ok(r.rebuilds >= 2, `partitions were rebuilt (${r.rebuilds})`);
    assert.ok(r.replayed > 0, 'records were replayed');
    assert.equal(r.late, 0);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'no alert twice');
    expectOracle(r);
  });

  it('a rebuild under a running detector ends only when its replay has caught up, though the consumer reports the batch that found the loss after the seek', async () => {
    // kafkajs emits END_BATCH_PROCESS (-> notePosition) for the batch whose flush found Redis
    // empty after eachBatch returned, that is after the seek: its position is where the consumer
    // was, not where it is. Taken as the position, it ended the rebuild at the first replayed
    // batch, and the windows the watermark had passed were evaluated on panes not rebuilt yet.
    // One loss: no replay is cut short by another, so every rebuild's range is replayed in full.
    const r = await runDetector({ events: 30_000, seed: 17, loseRedisAt: [50], lose: 'running', reportPositions: true });
    assert.ok(r.rebuilds >= 2, `partitions were rebuilt (${r.rebuilds})`);
    assert.equal(r.replayed, r.toReplay, 'every record up to where the loss was found is replayed');
    assert.equal(r.late, 0);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'no alert twice');
    expectOracle(r);
  });

  it('rebuilds from the committed checkpoint when a new owner finds Redis empty: same alerts, each once', async () => {
    const r = await runDetector({ events: 30_000, seed: 19, loseRedisAt: [40, 70, 100, 130], lose: 'new-owner' });
    assert.ok(r.rebuilds >= 1, `partitions were rebuilt (${r.rebuilds})`);
    assert.equal(r.late, 0);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'no alert twice');
    expectOracle(r);
  });

  it('write-behind: deltas buffered across batches, lost with crashes, read again from the commits: same alerts', async () => {
    const r = await runDetector({ events: 30_000, seed: 23, crashEvery: 9, flushIntervalMs: 120_000 });
    assert.equal(r.late, 0);
    expectOracle(r);
  });

  it('write-behind with Redis restarted empty under the running detector: same alerts, each once', async () => {
    const r = await runDetector({ events: 30_000, seed: 29, loseRedisAt: [50, 100], lose: 'running', flushIntervalMs: 120_000 });
    assert.ok(r.rebuilds >= 1, `partitions were rebuilt (${r.rebuilds})`);
    assert.equal(r.late, 0);
    const ids = r.alerts.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'no alert twice');
    expectOracle(r);
  });

  it('write-behind with Redis found empty by a new owner: rebuilt from the committed checkpoint, same alerts', async () => {
    const r = await runDetector({ events: 30_000, seed: 31, loseRedisAt: [40, 90], lose: 'new-owner', flushIntervalMs: 120_000 });
    assert.ok(r.rebuilds >= 1, `partitions were rebuilt (${r.rebuilds})`);
    assert.equal(r.late, 0);
    expectOracle(r);
  });

  it('write-behind: a failed flush is retried by the same instance without counting buffered records twice', async () => {
    const r = await runDetector({ events: 30_000, seed: 37, failPublish: true, retrySameInstance: true, flushIntervalMs: 120_000 });
    expectOracle(r);
  });

  it('write-behind: a flush fails while Redis is down, and Redis comes back empty: rebuilt, same alerts', async () => {
    const r = await runDetector({ events: 30_000, seed: 41, loseRedisAt: [30, 60, 90, 120], lose: 'down-then-empty', flushIntervalMs: 120_000 });
    assert.ok(r.rebuilds >= 1, `partitions were rebuilt (${r.rebuilds})`);
    expectOracle(r);
  });

  it('a batch fails while Redis is down, and Redis comes back empty (every batch written): rebuilt, same alerts', async () => {
    const r = await runDetector({ events: 30_000, seed: 41, loseRedisAt: [30, 60, 90, 120], lose: 'down-then-empty' });
    expectOracle(r);
  });
});
