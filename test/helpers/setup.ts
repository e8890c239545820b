// Mocha root setup: quiet kafkajs' partitioner notice in every test process, and load kafkajs with
// kade's exact read_committed filter before any test imports it.
import '../../src/ingest/kafkajs-read-committed';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
export {};
