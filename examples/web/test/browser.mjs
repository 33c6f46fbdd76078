// The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by puppeteer-core; no
// browser is downloaded), against the real C++ server (counter_server --web) on a SQLite file, run by CTest:
//   node test/browser.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER
// Three pages link as three players and play; two claim at once and the loser sees the reason; a fourth
// page joins late and shows the same state; the server is killed (SIGKILL) and restarted on the same
// SQLite file, and every page reconnects by itself and shows the same counter. Asserts on the DOM only.
// The end state is saved as OUT_FOLDER/browser-end.png. The server listens on 127.0.0.1; a deadline
// stops everything, and the server and the browser are stopped also when an assertion fails.
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { chromium, launchChromium, runBrowserTest } from './browser_harness.mjs';
import { sleep, startCounterServer } from '../../../tests/net/js/harness.mjs';

const [serverBinary, site, out] = process.argv.slice(2);
if (!serverBinary || !site || !out) {
  console.error('usage: node test/browser.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER');
  process.exit(2);
}
const store = path.join(out, 'browser.sqlite');

let server;
let browser;

const step = (what) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${what}`);

const startServer = (port) => startCounterServer(serverBinary,
  ['--address', '127.0.0.1', '--port', String(port), '--store', store, '--web', site]);

// The DOM of one page, as the test reads it.
const readPage = (page) => page.evaluate(() => {
  const text = (id) => document.getElementById(id).textContent;
  const items = (id) => [...document.getElementById(id).children];
  return {
    connection: text('connection'),
    linked: document.getElementById('connection').dataset.linked === 'true',
    optimistic: { counter: Number(text('optimistic-counter')), claim: text('optimistic-claim') },
    confirmed: { counter: Number(text('confirmed-counter')), claim: text('confirmed-claim') },
    pending: items('pending').map((li) => li.textContent),
    refusals: items('refusals').map((li) => ({ type: li.dataset.type, reason: li.dataset.reason, text: li.textContent })),
    users: items('users').map((li) => ({ username: li.dataset.username, linked: li.dataset.linked === 'true' })),
  };
});

async function until(pages, predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(pages.map(readPage));
    if (states.every(predicate)) return states;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(states, null, 1)}`);
    await sleep(25);
  }
}

// A click through the page's own DOM: puppeteer's element handles of a tab that is not in front go stale
// with this Chromium ("Target closed"), page.evaluate does not.
const click = (page, id) => page.evaluate((i) => document.getElementById(i).click(), id);

const pageErrors = [];
async function openPlayer(url, name) {
  step(`open a page for ${name}`);
  const page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('error', (error) => step(`${name}'s page crashed: ${error.message}`));
  page.on('close', () => step(`${name}'s page closed`));
  await page.setViewport({ width: 760, height: 560 });
  await page.goto(url, { waitUntil: 'load' });
  await page.type('#name', name);
  step(`${name} joins`);
  await click(page, 'join');
  await until([page], (s) => s.linked && s.connection === `linked as ${name}`, `${name} to link`);
  return page;
}

async function main() {
  await mkdir(out, { recursive: true });
  await rm(store, { force: true });
  await rm(`${store}-wal`, { force: true });
  await rm(`${store}-shm`, { force: true });
  step('start the server');
  server = await startServer(0);
  step(`server on port ${server.port}; launch ${chromium}`);
  const url = `http://127.0.0.1:${server.port}/`;
  browser = await launchChromium();

  const alice = await openPlayer(url, 'alice');
  const bob = await openPlayer(url, 'bob');
  // carol's moves are held back 400 ms before they are sent: her optimistic state runs ahead of the
  // confirmed one, and her pending moves show as "sending...".
  const carol = await openPlayer(`${url}?delay=400`, 'carol');
  const players = [alice, bob, carol];
  await until(players, (s) => s.users.length === 3 && s.users.every((u) => u.linked), 'three linked players everywhere');

  await click(alice, 'increment');
  await click(bob, 'increment');
  await click(carol, 'increment');
  const [carolNow] = await Promise.all([readPage(carol)]);
  assert.deepEqual(carolNow.pending, ['increment 1: sending...']);
  assert.equal(carolNow.optimistic.counter, carolNow.confirmed.counter + 1);
  await until(players, (s) => s.confirmed.counter === 3 && s.optimistic.counter === 3 && s.pending.length === 0,
    'three increments confirmed everywhere');

  // A contested claim: alice and bob claim at the same moment; the server takes one and refuses the other.
  await Promise.all([click(alice, 'claim'), click(bob, 'claim')]);
  const afterClaim = await until(players, (s) => s.confirmed.claim !== 'nobody' && s.pending.length === 0,
    'the claim to settle');
  const winner = afterClaim[0].confirmed.claim;
  assert.ok(winner === 'alice' || winner === 'bob', winner);
  const [winnerPage, loserPage] = winner === 'alice' ? [alice, bob] : [bob, alice];
  const loser = await readPage(loserPage);
  assert.deepEqual(loser.refusals.map((r) => [r.type, r.reason]), [['claim', 'already claimed']]);
  assert.match(loser.refusals[0].text, /claim refused: already claimed/);
  assert.equal(loser.optimistic.claim, winner); // the refused claim snapped back
  assert.deepEqual((await readPage(winnerPage)).refusals, []);

  // Only the claimer may move now: the others are refused with the reason, and nothing changes.
  await click(winnerPage, 'increment');
  await click(carol, 'increment');
  await click(carol, 'release');
  await until(players, (s) => s.confirmed.counter === 4 && s.pending.length === 0, 'the claimer\'s move');
  const carolRefused = await until([carol], (s) => s.refusals.length === 2, 'carol\'s refusals');
  assert.deepEqual(carolRefused[0].refusals.map((r) => [r.type, r.reason]),
    [['release', 'claimed by someone else'], ['increment', 'claimed by someone else']]);
  await click(winnerPage, 'release');
  await until(players, (s) => s.confirmed.claim === 'nobody' && s.pending.length === 0, 'the release');
  await click(loserPage, 'increment');
  const settled = await until(players, (s) => s.confirmed.counter === 5 && s.optimistic.counter === 5,
    'five everywhere');

  // A late joiner rebuilds the same state from the history.
  const dave = await openPlayer(url, 'dave');
  const everyone = [...players, dave];
  await until(everyone, (s) => s.users.length === 4 && s.users.every((u) => u.linked), 'four linked players');
  const late = await until([dave], (s) => s.confirmed.counter === 5, 'dave to catch up');
  assert.deepEqual(late[0].confirmed, settled[0].confirmed);
  assert.deepEqual(late[0].optimistic, settled[0].confirmed);

  // The server dies (SIGKILL: no goodbye to anyone) and comes back on the same SQLite file and port.
  server.child.kill('SIGKILL');
  assert.equal(await server.exited, 'SIGKILL');
  await until(everyone, (s) => !s.linked && s.connection.includes('reconnecting'), 'every page to notice');
  server = await startServer(server.port);
  const back = await until(everyone, (s) => s.linked && s.users.length === 4 && s.users.every((u) => u.linked)
    && s.confirmed.counter === 5, 'every page to reconnect and rebuild', 20_000);
  for (const s of back) {
    assert.deepEqual(s.confirmed, { counter: 5, claim: 'nobody' });
    assert.deepEqual(s.optimistic, s.confirmed);
  }
  // and play goes on
  await click(dave, 'increment');
  await until(everyone, (s) => s.confirmed.counter === 6 && s.pending.length === 0, 'a move after the restart');

  // The end state as the loser of the claim sees it: the refusal with its reason, everyone linked.
  await loserPage.bringToFront();
  await loserPage.screenshot({ path: path.join(out, 'browser-end.png') });
  assert.deepEqual(pageErrors, []);
  console.log(`browser test passed; end state in ${path.join(out, 'browser-end.png')}`);
}

await runBrowserTest('browser test', {
  deadlineMs: 150_000,
  main,
  processes: () => ({ server, browser }),
});
