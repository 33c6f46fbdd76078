// Throw-away certificates for the TLS tests in JavaScript (tls_interop.mjs, examples/web/test/browser_tls.mjs),
// made with the openssl command in a temporary folder: a CA, and server certificates for 127.0.0.1 and
// localhost that it signs (each with the serial asked for). Node's built-ins only.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const openssl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function makePki() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'krmx-tls-js-'));
  const file = (name) => path.join(dir, name);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-subj', '/O=krmx-cpp tests/CN=krmx test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', file('ca-key.pem'), '-out', file('ca.pem')]);
  const pki = {
    dir,
    ca: file('ca.pem'),
    cert: file('cert.pem'),
    key: file('key.pem'),
    caPem: () => readFileSync(file('ca.pem')),
    // A server certificate named `name` with `serial` (hex), written over cert.pem and key.pem (each
    // through a rename, as a renewal does).
    issue(name, serial) {
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj',
        `/O=krmx-cpp tests/CN=${name}`, '-keyout', file('next-key.pem'), '-out', file('next.csr')]);
      writeFileSync(file('ext.cnf'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
        + 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
      openssl(['x509', '-req', '-in', file('next.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca-key.pem'),
        '-set_serial', `0x${serial}`, '-days', '30', '-extfile', file('ext.cnf'), '-out', file('next.pem')]);
      renameSync(file('next-key.pem'), file('key.pem'));
      renameSync(file('next.pem'), file('cert.pem'));
    },
    // Chromium's --ignore-certificate-errors-spki-list takes base64(SHA-256(SubjectPublicKeyInfo)).
    spkiHash() {
      const certificate = new crypto.X509Certificate(readFileSync(file('cert.pem')));
      const der = certificate.publicKey.export({ type: 'spki', format: 'der' });
      return crypto.createHash('sha256').update(der).digest('base64');
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  return pki;
}
