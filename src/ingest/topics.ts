import { Kafka } from 'kafkajs';
import { KadeConfig, dlqTopic } from '../config/load';

export interface TopicSpec {
  topic: string;
  numPartitions: number;
  configEntries?: Array<{ name: string; value: string }>;
}

export function topicSpecs(config: KadeConfig): TopicSpec[] {
  return [
    { topic: config.topics.raw, numPartitions: config.topics.rawPartitions },
    // A dead letter keeps the original bytes: let it be larger than any raw record can be.
    { topic: dlqTopic(config), numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(16 * 1024 * 1024) }] },
    { topic: config.topics.keyed, numPartitions: config.topics.keyedPartitions },
    { topic: config.topics.alerts, numPartitions: config.topics.alertsPartitions },
  ];
}

export interface TopicStatus extends TopicSpec {
  existing: number | null;
  created: boolean;
}

/** Creates missing topics; reports the partition count of existing ones (never changes them). */
export async function ensureTopics(kafka: Kafka, config: KadeConfig, create = true): Promise<TopicStatus[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const specs = topicSpecs(config);
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (create && missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.numPartitions, replicationFactor: config.topics.replicationFactor, configEntries: s.configEntries })),
      });
    }
    const present = specs.filter((s) => existing.has(s.topic)).map((s) => s.topic);
    const meta = present.length > 0 ? await admin.fetchTopicMetadata({ topics: present }) : { topics: [] };
    const counts = new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
    return specs.map((s) => ({ ...s, existing: counts.get(s.topic) ?? null, created: create && !existing.has(s.topic) }));
  } finally {
    await admin.disconnect();
  }
}
