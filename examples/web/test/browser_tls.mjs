// The web page over https:// and wss:// in real headless Chromium (as browser.mjs, shorter): counter_server
// with --tls-cert/--tls-key serves the page and its WebSocket on one TLS port, run by CTest:
//   node test/browser_tls.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER
// The certificate is the test's own (tests/net/js/pki.mjs, the openssl command); Chromium is told to accept
// exactly that key (--ignore-certificate-errors-spki-list), nothing else. Two pages link and play; the page
// reached the server over wss (the test asks each page which URLs its WebSockets have). The server listens on 127.0.0.1; a deadline stops everything, and the
// server and the browser are stopped also when an assertion fails.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { chromium, launchChromium, runBrowserTest } from './browser_harness.mjs';
import { sleep, startCounterServer } from '../../../tests/net/js/harness.mjs';
import { makePki } from '../../../tests/net/js/pki.mjs';

const [serverBinary, site, out] = process.argv.slice(2);
if (!serverBinary || !site || !out) {
  console.error('usage: node test/browser_tls.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER');
  process.exit(2);
}

let server;
let browser;
const step = (what) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${what}`);
const pki = makePki();
pki.issue('krmx web test', '2001');

const startServer = () => startCounterServer(serverBinary, ['--address', '127.0.0.1', '--port', '0', '--memory',
  '--web', site, '--tls-cert', pki.cert, '--tls-key', pki.key]);

const readPage = (page) => page.evaluate(() => ({
  linked: document.getElementById('connection').dataset.linked === 'true',
  counter: Number(document.getElementById('confirmed-counter').textContent),
  users: [...document.getElementById('users').children].length,
}));
async function until(pages, predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(pages.map(readPage));
    if (states.every(predicate)) return states;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(states)}`);
    await sleep(25);
  }
}
const click = (page, id) => page.evaluate((i) => document.getElementById(i).click(), id);

const pageErrors = [];
const sockets = [];
async function openPlayer(url, name) {
  step(`open a page for ${name}`);
  const page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  // Every WebSocket the page opens, by URL, as the page sees it (window.krmxTestSockets).
  await page.evaluateOnNewDocument(() => {
    const Native = window.WebSocket;
    window.krmxTestSockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.krmxTestSockets.push(this.url);
      }
    };
  });
  // ?name= fills in the name: no typing into a tab that is not in front (puppeteer stalls on that here)
  const response = await page.goto(`${url}?name=${name}`, { waitUntil: 'load' });
  assert.equal(response.status(), 200);
  assert.equal(response.securityDetails()?.subjectName(), 'krmx web test');
  step(`${name} joins`);
  await click(page, 'join');
  await until([page], (s) => s.linked, `${name} to link`);
  step(`${name} linked`);
  sockets.push(...await page.evaluate(() => window.krmxTestSockets));
  return page;
}

async function main() {
  await mkdir(out, { recursive: true });
  step('start the server');
  server = await startServer();
  step(`server on port ${server.port}; launch ${chromium}`);
  const url = `https://127.0.0.1:${server.port}/`;
  browser = await launchChromium([`--ignore-certificate-errors-spki-list=${pki.spkiHash()}`]);
  const alice = await openPlayer(url, 'alice');
  const bob = await openPlayer(url, 'bob');
  const players = [alice, bob];
  await until(players, (s) => s.users === 2, 'two players everywhere');
  await click(alice, 'increment');
  await click(bob, 'increment');
  await click(alice, 'increment');
  await until(players, (s) => s.counter === 3, 'three increments confirmed everywhere');
  assert.ok(sockets.length >= 2, JSON.stringify(sockets));
  for (const u of sockets) assert.equal(u, `wss://127.0.0.1:${server.port}/`);
  await alice.bringToFront();
  await alice.screenshot({ path: path.join(out, 'browser-tls-end.png') });
  assert.deepEqual(pageErrors, []);
  console.log('browser tls test passed');
}

await runBrowserTest('browser tls test', {
  deadlineMs: 100_000,
  main,
  processes: () => ({ server, browser }),
  cleanup: () => {
    pki.remove();
  },
});
