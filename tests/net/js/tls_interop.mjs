// The real @krmx/client@0.5.4 over wss against our C++ server with TLS (examples/counter_server --tls-cert
// --tls-key), run by CTest (krmx_net_tls_interop):
//   node tls_interop.mjs SERVER_BINARY
// The client verifies the server's certificate for real (ws's `ca` option with the test's own CA, never
// rejectUnauthorized: false): two players append to the counter over wss and see each other's events, a
// client that does not trust the CA is refused, and SIGHUP makes the running server present a renewed
// certificate to new connections while an open connection goes on with its own.
// Every server runs on 127.0.0.1 with a deadline and is stopped at the end, also on failure.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import process from 'node:process';
import tls from 'node:tls';
import { runTest, sleep, startCounterServer, stopServer, until } from './harness.mjs';
import { makePki } from './pki.mjs';

const require = createRequire(import.meta.url);
const { WebSocket } = require('ws');
const { createClient } = require('@krmx/client');

const [serverBinary] = process.argv.slice(2);
if (!serverBinary) {
  console.error('usage: node tls_interop.mjs SERVER_BINARY');
  process.exit(2);
}

let server;

const pki = makePki();
pki.issue('server-1', '1001');

// @krmx/client opens `new WebSocket(url)`; this one trusts the test's CA (`trusted`) and records frames.
let trusted = pki.caPem();
class TrustingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, trusted ? { ca: trusted } : {});
    this.frames = [];
    this.on('message', (data) => this.frames.push(data.toString()));
  }
}
globalThis.WebSocket = TrustingWebSocket;

async function startServer() {
  const started = await startCounterServer(serverBinary, ['--address', '127.0.0.1', '--port', '0', '--memory',
    '--tls-cert', pki.cert, '--tls-key', pki.key]);
  return { ...started, url: `wss://127.0.0.1:${started.port}` };
}

// The serial of the certificate a new TLS connection is shown (verified against the CA).
const presentedSerial = (port) => new Promise((resolve, reject) => {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem() }, () => {
    const serial = socket.getPeerCertificate().serialNumber;
    socket.end();
    resolve(serial);
  });
  socket.on('error', reject);
});

async function player(url, name) {
  const client = createClient({ logger: false });
  const messages = [];
  client.on('message', (m) => messages.push(m));
  await client.connect(url);
  await client.link(name);
  return { client, messages };
}

async function main() {
  server = await startServer();
  assert.equal(await presentedSerial(server.port), '1001');

  const alice = await player(server.url, 'alice');
  const bob = await player(server.url, 'bob');
  const append = (p, by, amount) => p.client.send({
    type: 'stream/append', payload: { domain: 'counter', dispatcher: by, event: { type: 'increment', payload: amount } },
  });
  append(alice, 'alice', 2);
  append(bob, 'bob', 3);
  const appends = (p) => p.messages.filter((m) => m.type === 'stream/append').map((m) => m.payload.event.payload);
  await until(() => appends(alice).length === 2 && appends(bob).length === 2, 'both appends at both players');
  assert.deepEqual(appends(alice), appends(bob));
  assert.deepEqual([...appends(alice)].sort(), [2, 3]);

  // a client that does not trust the test's CA is refused by its own TLS
  trusted = undefined;
  const stranger = createClient({ logger: false });
  const refused = await stranger.connect(server.url).then(() => 'connected', (e) => String(e?.message ?? e));
  assert.notEqual(refused, 'connected');
  trusted = pki.caPem();

  // SIGHUP: the renewed certificate for new connections; alice's connection goes on
  pki.issue('server-2', '1002');
  server.child.kill('SIGHUP');
  const end = Date.now() + 5000;
  let serial = await presentedSerial(server.port);
  while (serial !== '1002' && Date.now() < end) {
    await sleep(20);
    serial = await presentedSerial(server.port);
  }
  assert.equal(serial, '1002');
  append(alice, 'alice', 4);
  await until(() => appends(bob).length === 3, 'alice\'s append after the reload');
  const carol = await player(server.url, 'carol');
  await until(() => appends(carol).length === 3, 'carol\'s history over the new certificate');
  for (const p of [alice, bob, carol]) await p.client.leave();
  console.log('tls interop passed');
}

await runTest('tls interop', {
  deadlineMs: 60_000,
  main,
  kill: () => server?.child.kill('SIGKILL'),
  cleanup: async () => {
    const code = await stopServer(server, 10_000);
    pki.remove();
    if (server && code !== 0) {
      console.error(`server did not stop cleanly: ${code}`);
      return false;
    }
    return true;
  },
});
