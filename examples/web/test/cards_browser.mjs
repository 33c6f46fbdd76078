// The card game with hidden hands (cards.html) in real headless Chromium, against the real C++ server
// (counter_server --cards cards --web) on a SQLite file, run by CTest:
//   node test/cards_browser.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER
// Two pages sit down and are dealt five cards each; a spectator and a late joiner watch; the player on turn
// plays (or draws), the other plays out of turn and sees the refusal; the server is killed (SIGKILL) and
// restarted on the same file, and every page reconnects and shows the same table. Every WebSocket frame
// each page receives is read through the DevTools protocol, and the test asserts that no frame ever
// carried a card of another player's hand to it, nor any part of the server's private state.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { chromium, launchChromium, runBrowserTest } from './browser_harness.mjs';
import { readCardFrames, sleep, startCounterServer } from '../../../tests/net/js/harness.mjs';

const require = createRequire(import.meta.url);
const jsondiffpatch = require('jsondiffpatch'); // the one @krmx/state bundles into the page

const [serverBinary, site, out] = process.argv.slice(2);
if (!serverBinary || !site || !out) {
  console.error('usage: node test/cards_browser.mjs SERVER_BINARY SITE_FOLDER OUT_FOLDER');
  process.exit(2);
}
const store = path.join(out, 'cards.sqlite');

let server;
let browser;
const step = (what) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${what}`);
const startServer = (port) => startCounterServer(serverBinary,
  ['--address', '127.0.0.1', '--port', String(port), '--store', store, '--web', site, '--cards', 'cards']);

// The DOM of one page, as the test reads it.
const readPage = (page) => page.evaluate(() => {
  const $ = (id) => document.getElementById(id);
  return {
    linked: $('connection').dataset.linked === 'true',
    connection: $('connection').textContent,
    hand: [...$('hand').children].map((b) => Number(b.dataset.card)),
    playable: [...$('hand').children].filter((b) => b.className === 'playable').map((b) => Number(b.dataset.card)),
    top: $('top').dataset.card === '' ? null : Number($('top').dataset.card),
    deck: Number($('deck').textContent),
    turn: $('turn').textContent,
    held: Object.fromEntries([...$('held').children].map((li) => [li.dataset.player, Number(li.dataset.count)])),
    refusals: [...$('refusals').children].map((li) => li.dataset.reason),
  };
});

async function until(pages, predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(pages.map((p) => readPage(p.page)));
    if (states.every(predicate)) return states;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(states)}`);
    await sleep(25);
  }
}

const click = (page, selector) => page.evaluate((s) => document.querySelector(s).click(), selector);

const pageErrors = [];
async function openPage(url, name) {
  step(`open a page for ${name}`);
  const page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  // Every frame the page receives, as the browser's network layer saw it.
  const frames = [];
  const cdp = await page.target().createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketFrameReceived', ({ response }) => frames.push(response.payloadData));
  await page.setViewport({ width: 760, height: 520 });
  await page.goto(`${url}cards.html`, { waitUntil: 'load' });
  await page.type('#name', name);
  await click(page, '#join');
  const player = { name, page, frames };
  await until([player], (s) => s.linked && s.connection === `linked as ${name}`, `${name} to link`);
  return player;
}

async function main() {
  await mkdir(out, { recursive: true });
  for (const f of [store, `${store}-wal`, `${store}-shm`]) await rm(f, { force: true });
  server = await startServer(0);
  const url = `http://127.0.0.1:${server.port}/`;
  step(`server on port ${server.port}; launch ${chromium}`);
  browser = await launchChromium();

  const alice = await openPage(url, 'alice');
  const bob = await openPage(url, 'bob');
  const carol = await openPage(url, 'carol'); // watches: never sits
  const everyone = [alice, bob, carol];
  await until(everyone, (s) => s.turn === '' && Object.keys(s.held).length === 0, 'an empty table');
  step('alice and bob sit down; the server deals');
  await click(alice.page, '#sit');
  await until([alice], (s) => s.held.alice === 0, 'alice seated');
  await click(bob.page, '#sit');
  const dealt = await until(everyone, (s) => s.turn === 'alice' && s.held.alice === 5 && s.held.bob === 5, 'the deal');
  assert.equal(dealt[0].hand.length, 5);
  assert.equal(dealt[1].hand.length, 5);
  assert.deepEqual(dealt[2].hand, []); // carol holds nothing
  assert.equal(dealt[0].deck, 52 - 11);

  step('alice plays (or draws); bob plays out of turn');
  const before = dealt[0];
  if (before.playable.length > 0) {
    const card = before.playable[0];
    await click(alice.page, `#hand button[data-card="${card}"]`);
    await until(everyone, (s) => s.top === card && s.held.alice === 4 && s.turn === 'bob', 'alice\'s card on the pile');
  } else {
    await click(alice.page, '#draw');
    await until(everyone, (s) => s.held.alice === 6 && s.turn === 'bob', 'alice\'s draw');
  }
  // bob's turn now: alice plays again, out of turn: refused with the reason, her hand as it was
  const aliceNow = (await readPage(alice.page)).hand;
  await click(alice.page, `#hand button[data-card="${aliceNow[0]}"]`);
  const refused = await until([alice], (s) => s.refusals.length === 1, 'alice\'s refusal');
  assert.deepEqual(refused[0].refusals, ['not your turn']);
  await until([alice], (s) => s.hand.length === aliceNow.length, 'alice\'s card back in her hand');

  step('dave joins late');
  const dave = await openPage(url, 'dave');
  const table = await until([...everyone, dave], (s) => s.turn === 'bob', 'everyone to agree');
  assert.deepEqual(table[3].hand, []);
  assert.deepEqual(table[3].held, table[2].held);
  assert.equal(table[3].top, table[2].top);

  step('the server dies (SIGKILL) and comes back on the same file');
  const players = [...everyone, dave];
  server.child.kill('SIGKILL');
  assert.equal(await server.exited, 'SIGKILL');
  await until(players, (s) => !s.linked, 'every page to notice');
  server = await startServer(server.port);
  const back = await until(players, (s) => s.linked && s.turn === 'bob', 'every page to reconnect', 20_000);
  for (let i = 0; i < players.length; i += 1) {
    assert.deepEqual(back[i].hand, table[i].hand, `${players[i].name}'s hand after the restart`);
    assert.deepEqual(back[i].held, table[i].held);
    assert.equal(back[i].top, table[i].top);
  }
  // and play goes on: bob draws
  await click(bob.page, '#draw');
  await until(players, (s) => s.turn === 'alice' && s.held.bob === table[1].hand.length + 1, 'bob\'s draw');
  await sleep(100);

  step('no frame carried a card of another player\'s hand');
  const read = Object.fromEntries(players.map((p) => [p.name, readCardFrames(p.frames, 'cards', jsondiffpatch.patch)]));
  const finals = await Promise.all(players.map((p) => readPage(p.page)));
  for (let i = 0; i < players.length; i += 1) {
    const { name } = players[i];
    assert.deepEqual(read[name].leaks, [], `${name} received private state`);
    assert.deepEqual(read[name].view.hand, finals[i].hand, `${name}'s frames add up to what the page shows`);
  }
  assert.deepEqual([...read.carol.seen], [], 'carol saw a hand');
  assert.deepEqual([...read.dave.seen], [], 'dave saw a hand');
  const shared = [...read.alice.seen].filter((c) => read.bob.seen.has(c));
  assert.deepEqual(shared, [], 'a card was in both alice\'s and bob\'s frames');
  assert.ok(read.alice.seen.size >= 5 && read.bob.seen.size >= 5);
  for (const p of players) assert.ok(p.frames.length > 3, `${p.name} received frames`);

  await alice.page.bringToFront();
  await alice.page.screenshot({ path: path.join(out, 'cards-end.png') });
  assert.deepEqual(pageErrors, []);
  console.log(`cards browser test passed (${players.map((p) => `${p.name}: ${p.frames.length} frames`).join(', ')})`);
}

await runBrowserTest('cards browser test', {
  deadlineMs: 150_000,
  main,
  processes: () => ({ server, browser }),
});
