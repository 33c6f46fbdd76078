// The inspector (krmx::net::Inspector, counter_server --inspect-token) in real headless Chromium (Debian's
// /usr/bin/chromium, driven by puppeteer-core), against the real C++ server on a SQLite file, run by CTest:
//   node test/inspector_browser.mjs SERVER_BINARY OUT_FOLDER
// The page is refused without its token; with it, it shows the counter domain's events live as a player
// makes them (over a WebSocket of its own), and its slider shows the state at old positions, which the
// server no longer holds in memory (--tail 8) and reads back from its store. Asserts on the DOM only; the
// end state is saved as OUT_FOLDER/inspector-end.png. The server listens on 127.0.0.1; a deadline stops
// everything, and the server and the browser are stopped also when an assertion fails.
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { chromium, launchChromium, runBrowserTest } from './browser_harness.mjs';
import { sleep, startCounterServer } from '../../../tests/net/js/harness.mjs';

const [serverBinary, out] = process.argv.slice(2);
if (!serverBinary || !out) {
  console.error('usage: node test/inspector_browser.mjs SERVER_BINARY OUT_FOLDER');
  process.exit(2);
}
const store = path.join(out, 'inspector.sqlite');
const token = 'inspect-s3cret';

let server;
let browser;

const step = (what) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${what}`);

const readPage = (page) => page.evaluate(() => ({
  confirmed: Number(document.getElementById('summary').dataset.confirmed ?? -1),
  summary: document.getElementById('summary').textContent,
  rows: [...document.getElementById('events').rows].map((row) => ({
    position: Number(row.dataset.position),
    dispatcher: row.cells[1].textContent,
    event: JSON.parse(row.cells[2].textContent),
  })),
  statePosition: document.getElementById('state').dataset.position,
  state: document.getElementById('state').textContent,
  error: document.getElementById('error').textContent,
}));

async function until(page, predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const state = await readPage(page);
    if (predicate(state)) return state;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(state, null, 1)}`);
    await sleep(25);
  }
}

// The state at `position`, as the page shows it after the slider moved there.
async function stateAt(page, position) {
  await page.evaluate((p) => {
    const slider = document.getElementById('position');
    slider.value = p;
    slider.dispatchEvent(new Event('input'));
  }, position);
  const shown = await until(page, (s) => s.statePosition === String(position) && s.state !== '', `the state at ${position}`);
  return JSON.parse(shown.state);
}

async function main() {
  await mkdir(out, { recursive: true });
  for (const suffix of ['', '-wal', '-shm']) await rm(`${store}${suffix}`, { force: true });
  step('start the server');
  server = await startCounterServer(serverBinary, ['--address', '127.0.0.1', '--port', '0', '--store', store,
    '--tail', '8', '--inspect-token', token]);
  const origin = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
  const pageErrors = [];
  const page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.setViewport({ width: 1000, height: 640 });

  step('without the token, or with another one: 401');
  assert.equal((await page.goto(`${origin}/inspect`)).status(), 401);
  assert.equal((await page.goto(`${origin}/inspect?token=wrong`)).status(), 401);
  assert.equal((await page.goto(`${origin}/inspect/api/domains`)).status(), 401);

  step('with it: the page, and the empty counter domain');
  assert.equal((await page.goto(`${origin}/inspect?token=${token}`, { waitUntil: 'load' })).status(), 200);
  await until(page, (s) => s.confirmed === 0 && s.statePosition === '0', 'the empty domain');
  assert.deepEqual(JSON.parse((await readPage(page)).state), { counter: 0 });

  step('a player makes 30 moves over a WebSocket of its own; the log follows live');
  await page.evaluate(async (url) => {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
    const linked = new Promise((resolve) => {
      socket.onmessage = (m) => { if (JSON.parse(m.data).type === 'krmx/accepted') resolve(); };
    });
    socket.send(JSON.stringify({ type: 'krmx/link', payload: { username: 'alice', version: '0.5.4' } }));
    await linked;
    const send = (event) => socket.send(JSON.stringify({ type: 'stream/append', payload: { domain: 'counter', event } }));
    for (let i = 0; i < 30; ++i) {
      // 20 increments of 1, alice claims, 9 increments of 2; at a human pace (the server limits frame rates).
      send(i < 20 ? { type: 'increment', payload: 1 } : i === 20 ? { type: 'claim' } : { type: 'increment', payload: 2 });
      await new Promise((r) => setTimeout(r, 40));
    }
    window.player = socket;  // stays linked
  }, `ws://127.0.0.1:${server.port}/`);
  const live = await until(page, (s) => s.confirmed === 30 && s.rows.length === 30 && s.statePosition === '30',
    'thirty events in the log');
  assert.deepEqual(live.rows.map((r) => r.position), [...Array(30).keys()]);
  assert.deepEqual(live.rows[20], { position: 20, dispatcher: 'alice', event: { type: 'claim' } });
  assert.deepEqual(live.rows[29].event, { type: 'increment', payload: 2 });
  assert.deepEqual(JSON.parse(live.state), { claim: 'alice', counter: 38 });
  // The server holds only a tail: the older events came from the store.
  const heldFrom = Number(/held in memory from (\d+)/.exec(live.summary)[1]);
  assert.ok(heldFrom > 5, live.summary);

  step('the slider: states before the tail (read from the store) and inside it');
  assert.deepEqual(await stateAt(page, 5), { counter: 5 });
  assert.deepEqual(await stateAt(page, 20), { counter: 20 });
  assert.deepEqual(await stateAt(page, 21), { claim: 'alice', counter: 20 });
  assert.deepEqual(await stateAt(page, 29), { claim: 'alice', counter: 36 });
  assert.deepEqual(await stateAt(page, 0), { counter: 0 });

  step('a click on an event shows the state right after it');
  await page.evaluate(() => document.querySelector('#events tr[data-position="12"]').click());
  assert.deepEqual(JSON.parse((await until(page, (s) => s.statePosition === '13', 'the state after event 12')).state),
    { counter: 13 });

  step('the API refuses what it cannot answer');
  const api = (query) => page.evaluate(async (q, t) => {
    const response = await fetch(`/inspect/api/${q}`, { headers: { Authorization: `Bearer ${t}` } });
    return { status: response.status, body: await response.json() };
  }, query, token);
  assert.equal((await api('state?domain=nowhere&position=0')).status, 404);
  assert.equal((await api('state?domain=counter&position=31')).status, 400);
  assert.equal((await api('events?domain=counter&from=x&count=1')).status, 400);
  const noToken = await page.evaluate(async () => (await fetch('/inspect/api/domains')).status);
  assert.equal(noToken, 401);

  await page.screenshot({ path: path.join(out, 'inspector-end.png') });
  assert.deepEqual(pageErrors, []);
  console.log(`inspector test passed; end state in ${path.join(out, 'inspector-end.png')}`);
}

await runBrowserTest('inspector browser test', {
  deadlineMs: 120_000,
  main,
  processes: () => ({ server, browser }),
});
