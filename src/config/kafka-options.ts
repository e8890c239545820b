import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { KadeConfig } from './load';
import { tlsOptions } from './tls-files';

/**
 * The security part of every kafkajs client kade builds (TLS and SASL), from kafka.ssl.* and
 * kafka.sasl.*. PEM files are read here, so a bad file is a ConfigError naming its key.
 */
export function kafkaSecurityOptions(config: KadeConfig): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const { ssl, sasl } = config.kafka;
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  if (ssl.enabled) out.ssl = tlsOptions(ssl, 'kafka.ssl');
  if (sasl.mechanism !== 'none') {
    out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
  }
  return out;
}
