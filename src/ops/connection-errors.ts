/**
 * Recognizes the two connection failures a user fixes in kade's security settings, from error
 * classes and protocol error codes (never from free message text): SASL / AUTH rejected, and a
 * TLS handshake that failed. Doctor and the CLI turn them into one line that names the keys.
 */

export interface ConnectionProblem {
  service: 'Kafka' | 'Redis';
  kind: 'authentication' | 'tls';
  /** The error's own message (no secrets: kafkajs and Redis never echo the password). */
  message: string;
  /** What to check, naming the configuration keys. */
  fix: string;
}

/** Node / OpenSSL certificate verification codes (tls.TLSSocket `authorizationError`). */
const CERT_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);

export const KAFKA_AUTH_FIX = 'check kafka.sasl.username and kafka.sasl.password (KADE_KAFKA_SASL_USERNAME, KADE_KAFKA_SASL_PASSWORD) '
  + 'and that kafka.sasl.mechanism (KADE_KAFKA_SASL_MECHANISM) is one the listener enables; a SCRAM user exists only once created on the cluster '
  + "(kafka-configs.sh --alter --entity-type users --entity-name USER --add-config 'SCRAM-SHA-512=[password=...]').";
export const KAFKA_TLS_FIX = 'kafka.ssl.caFile (KADE_KAFKA_SSL_CA_FILE) must hold the CA that signed the brokers\' certificates, which must name the '
  + 'addresses in kafka.brokers and their advertised listeners; a listener that requires client certificates needs kafka.ssl.certFile and kafka.ssl.keyFile.';
export const REDIS_AUTH_FIX = 'check the user and password: in redis.url (redis://USER:PASSWORD@host:port) or redis.username / redis.password '
  + '(KADE_REDIS_USERNAME, KADE_REDIS_PASSWORD), and that the ACL user is "on".';
export const REDIS_TLS_FIX = 'redis.tls.caFile (KADE_REDIS_TLS_CA_FILE) must hold the CA that signed the Redis server certificate, which must name the '
  + 'host in redis.url; a server with tls-auth-clients yes needs redis.tls.certFile and redis.tls.keyFile.';

interface Chained { name?: string; code?: string; message?: string; cause?: unknown; originalError?: unknown }

/** The error and its causes (kafkajs wraps in `cause` / `originalError`), outermost first. */
function chain(err: unknown): Chained[] {
  const out: Chained[] = [];
  let e: unknown = err;
  while (typeof e === 'object' && e !== null && out.length < 8 && !out.includes(e as Chained)) {
    out.push(e as Chained);
    const c = e as Chained;
    e = c.cause ?? c.originalError;
  }
  return out;
}

/** The Node error codes along the cause chain (e.g. ECONNRESET inside a kafkajs retry error). */
export function errorCodes(err: unknown): string[] {
  return chain(err).flatMap((e) => (typeof e.code === 'string' ? [e.code] : []));
}

const isTls = (e: Chained): boolean => typeof e.code === 'string' && (CERT_CODES.has(e.code) || e.code.startsWith('ERR_SSL_'));

/** The authentication or TLS problem behind an error, or null for anything else. */
export function connectionProblem(err: unknown): ConnectionProblem | null {
  const errors = chain(err);
  const kafka = errors.some((e) => typeof e.name === 'string' && e.name.startsWith('KafkaJS'));
  for (const e of errors) {
    const message = e.message ?? String(e);
    if (e.name === 'KafkaJSSASLAuthenticationError') return { service: 'Kafka', kind: 'authentication', message, fix: KAFKA_AUTH_FIX };
    // Redis error replies start with an upper-case code: WRONGPASS (bad user or password), NOAUTH (none given).
    if (e.name === 'ReplyError' && /^(WRONGPASS|NOAUTH)\b/.test(message)) return { service: 'Redis', kind: 'authentication', message, fix: REDIS_AUTH_FIX };
    if (isTls(e)) return kafka ? { service: 'Kafka', kind: 'tls', message, fix: KAFKA_TLS_FIX } : { service: 'Redis', kind: 'tls', message, fix: REDIS_TLS_FIX };
  }
  return null;
}

/** One line for a person: "Kafka authentication failed (...). Fix: ...". */
export function describeConnectionProblem(p: ConnectionProblem): string {
  const what = p.kind === 'authentication' ? 'authentication failed' : 'TLS handshake failed';
  return `${p.service} ${what} (${p.message.replace(/\s+/g, ' ').trim().replace(/\.+$/, '')}). Fix: ${p.fix}`;
}
