// Mocha root setup: quiet kafkajs' partitioner notice in every test process.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
export {};
