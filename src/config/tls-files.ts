import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError, TlsFiles } from './load';

/**
 * The TLS options of a client from its PEM files, read now (at startup), so a missing, unreadable
 * or mismatched file stops kade with a ConfigError that names the key instead of failing on the
 * first connection. `prefix` is the configuration path of the files, e.g. `kafka.ssl`.
 */
export function tlsOptions(files: TlsFiles, prefix: string): ConnectionOptions {
  const out: ConnectionOptions = { rejectUnauthorized: files.rejectUnauthorized };
  if (files.caFile !== '') {
    const ca = readPem(files.caFile, `${prefix}.caFile`);
    certificates(ca, `${prefix}.caFile`, files.caFile);
    out.ca = ca;
  }
  if (files.certFile !== '' || files.keyFile !== '') {
    const certKey = `${prefix}.certFile`;
    const keyKey = `${prefix}.keyFile`;
    if (files.certFile === '' || files.keyFile === '') throw new ConfigError(`${files.certFile === '' ? certKey : keyKey}: a client certificate needs both ${certKey} and ${keyKey}`);
    const cert = readPem(files.certFile, certKey);
    const key = readPem(files.keyFile, keyKey);
    const [leaf] = certificates(cert, certKey, files.certFile);
    if (/ENCRYPTED/.test(key)) throw new ConfigError(`${keyKey}: ${files.keyFile} is an encrypted private key; kade needs it unencrypted (protect the file instead)`);
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      throw new ConfigError(`${keyKey}: ${files.keyFile} holds no usable PEM private key (${(err as Error).message})`, { cause: err });
    }
    if (!leaf.checkPrivateKey(privateKey)) throw new ConfigError(`${keyKey}: ${files.keyFile} is not the private key of the certificate in ${certKey} (${files.certFile})`);
    out.cert = cert;
    out.key = key;
  }
  return out;
}

function readPem(file: string, key: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(`${key}: ${file} is not a PEM file (no "-----BEGIN" line)`);
  return text;
}

/** The certificates of a PEM bundle; at least one. */
function certificates(pem: string, key: string, file: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${key}: ${file} holds no PEM certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new ConfigError(`${key}: ${file} holds a certificate that does not parse (${(err as Error).message})`, { cause: err });
    }
  });
}
