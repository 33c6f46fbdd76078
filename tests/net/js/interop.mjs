// Interop of krmx-cpp's network layer with the real npm packages, run by CTest (krmx_net_interop):
//   node interop.mjs BOT_BINARY PEER...   (PEER: the command of tests/net/interop_peer.cpp, with its arguments:
//                                          krmx_net_tests --krmx-child krmx_net_interop_peer)
// - @krmx/client@0.5.4 links to our C++ WebSocketServer (PEER server = tests/net/interop_server.cpp):
//   every rejection reason verbatim, whole frame transcripts of link, relink, unlink, leave, kick and a
//   dropped socket, custom messages both ways;
// - the claimable counter on @krmx/state@0.0.1's StreamModel in JavaScript clients against our C++
//   StreamDomain: byte-identical broadcasts, a refused claim only to its sender, a late joiner rebuilding
//   from the history (as appends: a JavaScript client links without `features`), convergence with the server;
// - a domain with an audience (a room): JavaScript clients that are no members hear nothing and are refused,
//   admission catches them up with appends, and @krmx/state's client ignores `stream/dismissed`;
// - the card game of examples/cards on a C++ ProjectionDomain, played by @krmx/state@0.0.1's
//   ProjectionClient: each player's frames add up to its own view and carry no other player's cards,
//   optimistic plays are confirmed by their deltas, a refused play is invalidated with its reason, and a
//   sender whose view did not change is released by the delta that changes nothing;
// - JavaScript and C++ players in one game: the C++ counter_bot (BOT_BINARY = examples/counter_bot) and
//   JavaScript StreamModel clients append to one domain at the same time and converge; a refused C++ move
//   is told to the C++ sender only;
// - our C++ WebSocketClient (PEER client = tests/net/interop_client.cpp) against the real
//   @krmx/server@0.5.5.
// Every server runs on loopback with a deadline and is stopped at the end, also on failure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import readline from 'node:readline';
import process from 'node:process';
import { readCardFrames, sleep, until } from './harness.mjs';

const require = createRequire(import.meta.url);
const { WebSocket } = require('ws');
const { createClient } = require('@krmx/client');
const { createServer } = require('@krmx/server');
const {
  StreamModel, isStreamAppendMessage, ProjectionModel, isProjectionSetMessage, isProjectionDeltaMessage,
  isProjectionInvalidateMessage,
} = require('@krmx/state');
const jsondiffpatch = require('jsondiffpatch');
const { z } = require('zod');

const [botBinary, peerBinary, ...peerArgs] = process.argv.slice(2);
if (!peerBinary || !botBinary) {
  console.error('usage: node interop.mjs BOT_BINARY PEER_PROGRAM [PEER_ARGUMENT...]');
  process.exit(2);
}

const children = new Set();
const deadline = setTimeout(() => {
  console.error('interop: deadline of 120 s passed');
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, 120_000);

// Node 20 has no global WebSocket; @krmx/client uses the global one. This one also records every frame
// it receives, in order, so that whole transcripts can be compared.
class RecordingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.frames = [];
    this.on('message', (data) => this.frames.push(data.toString()));
  }
}
globalThis.WebSocket = RecordingWebSocket;


// --- the C++ server as a child process, with a line protocol on stdin/stdout --------------------------
async function startCppServer() {
  const child = spawn(peerBinary, [...peerArgs, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => lines.push(JSON.parse(line)));
  const exited = new Promise((resolve) => child.on('exit', (code) => { children.delete(child); resolve(code); }));
  await until(() => lines.length > 0, 'the C++ server to listen', 20_000);
  const { port } = lines.shift();
  const command = async (text) => {
    child.stdin.write(`${text}\n`);
    await until(() => lines.length > 0, `an answer to ${text}`);
    return lines.shift();
  };
  const stop = async () => {
    child.stdin.end('stop\n');
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout')]);
    if (code !== 0) {
      child.kill('SIGKILL');
      throw new Error(`C++ server did not stop cleanly: ${code}`);
    }
    return lines;
  };
  return { port, url: `ws://127.0.0.1:${port}`, command, stop, child };
}

const j = (type, username) => JSON.stringify({ type: `krmx/${type}`, payload: { username } });
const joined = (u) => j('joined', u);
const linked = (u) => j('linked', u);
const unlinked = (u) => j('unlinked', u);
const left = (u) => j('left', u);
const accepted = '{"type":"krmx/accepted"}';
const rejected = (reason) => JSON.stringify({ type: 'krmx/rejected', payload: { reason } });

async function connect(url) {
  const client = createClient({ logger: false });
  await client.connect(url);
  const socket = client.socket;
  return { client, socket, take: () => socket.frames.splice(0) };
}

// A raw socket for what @krmx/client would never send.
async function raw(url) {
  const socket = new RecordingWebSocket(url);
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  return {
    socket,
    async ask(text) {
      const before = socket.frames.length;
      socket.send(text);
      await until(() => socket.frames.length > before, `an answer to ${text}`);
      return socket.frames.splice(before);
    },
  };
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('@krmx/client: every rejection reason verbatim, the connection stays usable', async (server) => {
  const alice = await connect(server.url);
  await alice.client.link('alice');
  const r = await raw(server.url);
  const link = (payload) => JSON.stringify({ type: 'krmx/link', payload });
  assert.deepEqual(await r.ask('not json'), [rejected('invalid message')]);
  assert.deepEqual(await r.ask('{"type":7}'), [rejected('invalid message')]);
  assert.deepEqual(await r.ask('{"type":"chat"}'), [rejected('unlinked connection')]);
  assert.deepEqual(await r.ask('{"type":"krmx/link"}'), [rejected('invalid link request')]);
  assert.deepEqual(await r.ask(link({ username: 'bob', version: '0.5.4', auth: 3 })), [rejected('invalid link request')]);
  assert.deepEqual(await r.ask(link({ username: 'bob', version: '0.4.1' })),
    [rejected('krmx server version mismatch (server=0.5.*,client=0.4.1)')]);

  // the same through @krmx/client's own link(), which rejects with the reason
  const bob = await connect(server.url);
  const reason = (p) => p.then(() => 'linked', (e) => e.message);
  assert.equal(await reason(bob.client.link('1bob')), 'invalid username');
  assert.equal(await reason(bob.client.link('alice')), 'user alice is already linked to a connection');
  assert.equal(await reason(bob.client.link('bob', 'bad')), 'bad token');
  assert.equal(await reason(bob.client.link('bob', 'silent')), 'authentication timeout');
  assert.deepEqual(await server.command('accept-new-users 0'), { ok: true });
  assert.equal(await reason(bob.client.link('bob')), 'server is not accepting new users');
  assert.deepEqual(await server.command('accept-new-users 1'), { ok: true });
  assert.equal(await reason(bob.client.link('bob', 'later')), 'linked');
  // (@krmx/client lists itself first: it starts its user list on krmx/accepted)
  assert.deepEqual(bob.client.getUsers(), [{ username: 'bob', isLinked: true }, { username: 'alice', isLinked: true }]);
  for (const c of [alice, bob]) await c.client.leave();
  r.socket.close();
});

test('@krmx/client: whole transcripts of link, relink, unlink, leave, kick and a dropped socket', async (server) => {
  const alice = await connect(server.url);
  await alice.client.link('alice');
  assert.deepEqual(alice.take(), [accepted, joined('alice'), linked('alice')]);
  const bob = await connect(server.url);
  await bob.client.link('bob');
  await until(() => alice.socket.frames.length >= 2, 'alice to hear of bob');
  assert.deepEqual(bob.take(), [accepted, joined('alice'), linked('alice'), joined('bob'), linked('bob')]);
  assert.deepEqual(alice.take(), [joined('bob'), linked('bob')]);

  await bob.client.unlink();
  await until(() => alice.socket.frames.length >= 1, 'alice to hear bob unlink');
  assert.deepEqual(bob.take(), [unlinked('bob')]);
  assert.deepEqual(alice.take(), [unlinked('bob')]);

  await bob.client.link('bob'); // relink: no joined broadcast
  await until(() => alice.socket.frames.length >= 1, 'alice to hear bob relink');
  assert.deepEqual(bob.take(), [accepted, joined('alice'), linked('alice'), joined('bob'), linked('bob')]);
  assert.deepEqual(alice.take(), [linked('bob')]);

  bob.socket.terminate(); // a dropped socket unlinks
  await until(() => alice.socket.frames.length >= 1, 'alice to hear bob drop');
  assert.deepEqual(alice.take(), [unlinked('bob')]);
  const bob2 = await connect(server.url); // and the same name links again from a new socket
  await bob2.client.link('bob');
  await until(() => alice.socket.frames.length >= 1, 'alice to hear bob again');
  assert.deepEqual(bob2.take(), [accepted, joined('alice'), linked('alice'), joined('bob'), linked('bob')]);
  assert.deepEqual(alice.take(), [linked('bob')]);

  await alice.client.leave(); // leave: unlinked to all, then left
  await until(() => bob2.socket.frames.length >= 2 && alice.socket.frames.length >= 2, 'alice to leave');
  assert.deepEqual(alice.take(), [unlinked('alice'), left('alice')]);
  assert.deepEqual(bob2.take(), [unlinked('alice'), left('alice')]);

  assert.deepEqual(await server.command('kick bob'), { kicked: true }); // kick: as leave
  await until(() => bob2.socket.frames.length >= 2, 'bob to be kicked');
  assert.deepEqual(bob2.take(), [unlinked('bob'), left('bob')]);
  assert.equal(bob2.client.getStatus(), 'connected');
  await bob2.client.disconnect();
  await alice.client.disconnect();
});

test('@krmx/client: custom messages reach the application, and back', async (server) => {
  const carol = await connect(server.url);
  await carol.client.link('carol');
  const got = [];
  carol.client.on('message', (m) => got.push(m));
  carol.client.send({ type: 'chat', payload: { text: 'hi', n: [1, 2.5] } });
  await until(() => got.length === 1, 'the echo');
  assert.deepEqual(got[0], { type: 'echo', payload: { type: 'chat', payload: { text: 'hi', n: [1, 2.5] } } });
  assert.deepEqual(await server.command('messages'),
    { messages: [{ user: 'carol', message: { type: 'chat', payload: { text: 'hi', n: [1, 2.5] } } }] });
  await carol.client.leave();
  await carol.client.disconnect();
});

// Krmx State's claimable counter on @krmx/state's StreamModel, and the client glue of Krmx State's
// registerStream (@krmx/state-client-react is not on npm: its few lines, without React).
function claimableCounter() {
  const model = new StreamModel({ counter: 0, claim: undefined });
  const increment = model.when('increment', z.number(), (state, dispatcher, payload) => {
    if (state.claim !== undefined && state.claim !== dispatcher) throw new Error('claimed by someone else');
    state.counter += payload;
  });
  const claim = model.when('claim', z.undefined(), (state, dispatcher) => {
    if (state.claim !== undefined) throw new Error('already claimed');
    state.claim = dispatcher;
  });
  model.when('release', z.undefined(), (state, dispatcher) => {
    if (state.claim !== dispatcher) throw new Error('claimed by someone else');
    state.claim = undefined;
  });
  return { model, increment, claim };
}

async function streamPlayer(url, name, model, domain = 'counter') {
  const c = await connect(url);
  const stream = model.spawn({ optimisticSeconds: 10 });
  const invalidated = [];
  c.client.on('link', (u) => { if (u === name) stream.reset(); });
  c.client.on('unlink', (u) => { if (u === name) stream.reset(); });
  c.client.on('message', (message) => {
    if (message.type === 'stream/invalidate') invalidated.push(message.payload);
    if (!isStreamAppendMessage(message) || message.payload.domain !== domain) return;
    stream.dispatch(message.payload.dispatcher, message.payload.event);
  });
  await c.client.link(name);
  const dispatch = (event) => {
    assert.equal(stream.dispatch(name, event, true), true);
    c.client.send({ type: 'stream/append', payload: { domain, dispatcher: name, event } });
  };
  return { ...c, stream, dispatch, invalidated };
}

test('@krmx/state: JavaScript StreamModel clients against the C++ StreamDomain', async (server) => {
  const { model, increment, claim } = claimableCounter();
  const alice = await streamPlayer(server.url, 'alice', model);
  const bob = await streamPlayer(server.url, 'bob', model);
  // bob's link reaches alice on her own socket, maybe after bob's promise resolved
  await until(() => alice.socket.frames.includes(linked('bob')), 'alice to hear of bob');
  alice.take();
  bob.take();
  // an event with its keys in an unusual order: re-sent byte for byte, and confirmed by its sender
  alice.dispatch({ payload: 2, type: 'increment' });
  const expected = '{"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice","event":{"payload":2,"type":"increment"},"position":0}}';
  await until(() => alice.socket.frames.length >= 1 && bob.socket.frames.length >= 1, 'the broadcast');
  assert.deepEqual(alice.take(), [expected]);
  assert.deepEqual(bob.take(), [expected]);
  assert.equal(alice.stream.optimisticEvents.length, 0);

  alice.dispatch(claim());
  for (let i = 0; i < 10; i += 1) alice.dispatch(increment(1));
  await until(() => bob.stream.sourceState.counter === 12, 'alice\'s events at bob');
  bob.dispatch(claim()); // refused by the server: only bob hears
  await until(() => bob.invalidated.length === 1, 'bob\'s invalidate');
  assert.equal(bob.invalidated[0].reason, 'already claimed');
  assert.deepEqual(bob.invalidated[0].event, { type: 'claim' });
  await sleep(50);
  assert.equal(alice.invalidated.length, 0);
  assert.equal(alice.stream.optimisticEvents.length, 0);

  // a late joiner rebuilds the same state from the history (one stream/append per event)
  const carol = await streamPlayer(server.url, 'carol', model);
  await until(() => carol.stream.sourceState.counter === 12, 'carol\'s history');
  const fromServer = await server.command('state');
  for (const p of [alice, bob, carol]) {
    assert.deepEqual(p.stream.sourceState, { counter: fromServer.counter, claim: fromServer.claim });
  }
  assert.deepEqual(fromServer, { counter: 12, claim: 'alice', size: 12 });
  for (const p of [alice, bob, carol]) await p.client.leave();
});

test('@krmx/state: a room with an audience, against JavaScript clients', async (server) => {
  const { model, increment } = claimableCounter();
  const alice = await streamPlayer(server.url, 'alice', model, 'room');
  const bob = await streamPlayer(server.url, 'bob', model, 'room');
  await until(() => alice.socket.frames.includes(linked('bob')), 'alice to hear of bob');
  const roomFrames = (p) => p.take().filter((f) => f.includes('"domain":"room"'));
  assert.deepEqual(await server.command('admit alice'), { admitted: true });
  alice.dispatch(increment(2));
  alice.dispatch(increment(3));
  await until(() => alice.stream.sourceState.counter === 5 && alice.stream.optimisticEvents.length === 0,
    'alice\'s events confirmed');
  bob.dispatch(increment(100)); // no member: refused, to bob only
  await until(() => bob.invalidated.length === 1, 'bob\'s invalidate');
  assert.equal(bob.invalidated[0].reason, 'not a member of domain "room"');
  assert.equal(bob.stream.sourceState.counter, 0);
  assert.deepEqual(roomFrames(bob).filter((f) => f.includes('stream/append')), []);

  // admitted: the history at once, as one stream/append per event (a JavaScript client reads those)
  assert.deepEqual(await server.command('admit bob'), { admitted: true });
  await until(() => bob.stream.sourceState.counter === 5, 'bob\'s catch-up');
  roomFrames(bob);
  // dismissed: told once; @krmx/state's stream ignores the message and keeps working; nothing more arrives
  assert.deepEqual(await server.command('dismiss bob'), { dismissed: true });
  await until(() => bob.socket.frames.length >= 1, 'the dismissal');
  assert.deepEqual(roomFrames(bob), ['{"type":"stream/dismissed","payload":{"domain":"room"}}']);
  alice.dispatch(increment(1));
  await until(() => alice.stream.sourceState.counter === 6 && alice.stream.optimisticEvents.length === 0,
    'alice\'s event after the dismissal');
  await sleep(50);
  assert.deepEqual(roomFrames(bob), []);
  assert.equal(bob.stream.sourceState.counter, 5);
  assert.deepEqual(roomFrames(alice).filter((f) => f.includes('stream/dismissed')), []);
  for (const p of [alice, bob]) await p.client.leave();
});

// The card game of examples/cards/cards.hpp as @krmx/state's ProjectionClient needs it: payload schemas and
// the optimistic handler (the rules run on the C++ server; a client never calls the state handlers).
function cardsModel() {
  const model = new ProjectionModel({}, () => ({}));
  const serverOnly = () => { throw new Error('the server runs the rules'); };
  const sit = model.when('sit', z.undefined(), serverOnly);
  const play = model.when('play', z.number().int(), serverOnly, (view, dispatcher, card) => {
    const at = view.hand.indexOf(card);
    if (at === -1) throw new Error('not in your hand');
    view.hand.splice(at, 1);
    view.top = card;
  });
  const draw = model.when('draw', z.undefined(), serverOnly);
  return { model, sit, play, draw };
}

// The glue an application writes around ProjectionClient (the package ships none): the message checks of
// @krmx/state decide what is applied.
async function projectionPlayer(server, name, model, domain) {
  assert.deepEqual(await server.command(`seat ${name}`), { seated: true }); // the domains have audiences
  const c = await connect(server.url);
  const projection = model.spawnClient();
  const invalidated = [];
  const unread = [];
  c.client.on('message', (message) => {
    if (message.payload?.domain !== domain) return;
    if (isProjectionSetMessage(message)) {
      projection.set(message.payload.projection);
    } else if (isProjectionDeltaMessage(message)) {
      projection.apply(message.payload.delta, message.payload.optimisticId);
    } else if (isProjectionInvalidateMessage(message)) {
      invalidated.push(message.payload);
      projection.releaseOptimistic(message.payload.optimisticId);
    } else {
      unread.push(message);
    }
  });
  await c.client.link(name);
  await until(() => projection.internalProjection !== undefined, `${name}'s projection/set`);
  const dispatch = (action) => {
    const result = projection.optimistic(name, action);
    assert.equal(result.success, true);
    c.client.send({ type: 'projection/action', payload: { domain, action, optimisticId: result.optimisticId } });
    return result;
  };
  return { ...c, projection, dispatch, invalidated, unread };
}

test('@krmx/state: ProjectionClients play the card game against the C++ ProjectionDomain', async (server) => {
  const { model, sit, play, draw } = cardsModel();
  const alice = await projectionPlayer(server, 'alice', model, 'cards');
  const bob = await projectionPlayer(server, 'bob', model, 'cards');
  const carol = await projectionPlayer(server, 'carol', model, 'cards'); // a spectator
  alice.dispatch(sit());
  await until(() => alice.projection.projection().held.alice === 0, 'alice seated');
  bob.dispatch(sit());
  await until(() => carol.projection.projection().held.bob === 0, 'bob seated');
  assert.deepEqual(await server.command('deal'), { dealt: true, reason: '' });
  const views = async () => Object.fromEntries(await Promise.all(
    ['alice', 'bob', 'carol'].map(async (n) => [n, await server.command(`view ${n}`)])));
  let expected = await views();
  await until(() => alice.projection.projection().hand.length === 5 && carol.projection.projection().turn === 'alice',
    'the deal');
  for (const [name, p] of Object.entries({ alice, bob, carol })) assert.deepEqual(p.projection.projection(), expected[name]);

  // alice plays a card that matches (or draws): applied at once, then confirmed by her delta
  const top = alice.projection.projection().top;
  const card = alice.projection.projection().hand.find((c) => Math.floor(c / 13) === Math.floor(top / 13) || c % 13 === top % 13);
  if (card === undefined) {
    alice.dispatch(draw());
  } else {
    alice.dispatch(play(card));
    assert.equal(alice.projection.projection().top, card); // optimistic, before any answer
    assert.equal(alice.projection.optimisticActions.length, 1);
  }
  await until(() => alice.projection.optimisticActions.length === 0 && carol.projection.projection().turn === 'bob',
    'alice\'s move confirmed');
  // alice again, out of turn: invalidated with the reason, her view goes back
  const held = alice.projection.projection().hand.length;
  alice.dispatch(play(alice.projection.projection().hand[0]));
  assert.equal(alice.projection.projection().hand.length, held - 1);
  await until(() => alice.invalidated.length === 1, 'alice\'s invalidate');
  assert.equal(alice.invalidated[0].reason, 'not your turn');
  assert.equal(alice.projection.projection().hand.length, held);
  // a spectator that tries to sit now is refused; without an optimistic handler @krmx/state sends no
  // optimisticId, so there is nothing to answer
  const { optimisticId } = carol.dispatch(sit());
  assert.equal(optimisticId, undefined);

  await sleep(50);
  expected = await views();
  const { hands } = await server.command('hands');
  for (const [name, p] of Object.entries({ alice, bob, carol })) {
    assert.deepEqual(p.projection.projection(), expected[name], `${name}'s view`);
    assert.deepEqual(p.unread, [], `${name} read every message`);
    // no frame ever showed this player a card from another player's hand
    const { seen, leaks } = readCardFrames(p.take(), 'cards', jsondiffpatch.patch); // every frame since it connected
    assert.deepEqual(leaks, [], `${name} received private state`);
    for (const [other, cards] of Object.entries(hands)) {
      if (other === name) continue;
      for (const c of cards) assert.equal(seen.has(c), false, `${name} saw ${other}'s card ${c}`);
    }
  }
  for (const p of [alice, bob, carol]) await p.client.leave();
});

test('@krmx/state: a sender whose view did not change is released by the delta that changes nothing', async (server) => {
  const model = new ProjectionModel({}, () => ({}));
  const add = model.when('add', z.number().int(), () => {}, (view, dispatcher, n) => {
    if (n % 2 !== 0) view.even = !view.even;
  });
  const dave = await projectionPlayer(server, 'dave', model, 'parity');
  const erin = await projectionPlayer(server, 'erin', model, 'parity');
  assert.deepEqual(dave.projection.projection(), { even: true });
  dave.take();
  erin.take();
  const { optimisticId } = dave.dispatch(add(2));
  assert.equal(dave.projection.optimisticActions.length, 1);
  await until(() => dave.projection.optimisticActions.length === 0, 'dave\'s release');
  assert.deepEqual(dave.take().filter((f) => f.includes('"parity"')),
    [`{"type":"projection/delta","payload":{"domain":"parity","delta":{"_t":"a"},"optimisticId":"${optimisticId}"}}`]);
  assert.deepEqual(dave.projection.projection(), { even: true });
  dave.dispatch(add(1));
  await until(() => erin.projection.projection().even === false && dave.projection.optimisticActions.length === 0,
    'the change at erin');
  await sleep(50);
  assert.deepEqual(erin.take().filter((f) => f.includes('"parity"')),
    ['{"type":"projection/delta","payload":{"domain":"parity","delta":{"even":[true,false]}}}']);
  for (const p of [dave, erin]) await p.client.leave();
});

// Runs examples/counter_bot to its end: its exit code and what it printed.
async function runBot(port, name, moves) {
  const child = spawn(botBinary, ['--port', String(port), '--name', name, '--moves', String(moves)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (data) => { output += data; });
  const code = await new Promise((resolve) => child.on('exit', (c) => { children.delete(child); resolve(c); }));
  return { code, output };
}

test('JavaScript and C++ players in one game converge and agree on who may move', async (server) => {
  const { model, increment, claim } = claimableCounter();
  const alice = await streamPlayer(server.url, 'alice', model);
  const bob = await streamPlayer(server.url, 'bob', model);
  // bob's link reaches alice on her own socket, maybe after bob's promise resolved
  await until(() => alice.socket.frames.includes(linked('bob')), 'alice to hear of bob');
  alice.take();
  bob.take();
  // The C++ bot plays 5 increments while the JavaScript players append theirs.
  const botRun = runBot(server.port, 'cpp', 5);
  for (let i = 0; i < 5; i += 1) {
    alice.dispatch(increment(1));
    bob.dispatch(increment(2));
    await sleep(20);
  }
  const bot = await botRun;
  assert.equal(bot.code, 0, bot.output);
  assert.match(bot.output, /cpp done: counter \d+, \d+ events confirmed, 0 invalidated/);
  await until(() => alice.stream.sourceState.counter === 20 && bob.stream.sourceState.counter === 20,
    'every move at both JavaScript players');
  // Both JavaScript players received the same frames, the C++ player's events among them.
  const aliceFrames = alice.take().filter((f) => f.includes('stream/append'));
  const bobFrames = bob.take().filter((f) => f.includes('stream/append'));
  assert.deepEqual(aliceFrames, bobFrames);
  assert.equal(aliceFrames.filter((f) => f.includes('"dispatcher":"cpp"')).length, 5);
  assert.equal(aliceFrames.length, 15);

  // alice (JavaScript) claims the counter: a C++ player that joins later rebuilds the claim from the history
  // and refuses its own moves at once, so nothing reaches the server and nobody else hears of them.
  alice.dispatch(claim());
  await until(() => bob.stream.sourceState.claim === 'alice', 'the claim at bob');
  bob.take();
  const refused = await runBot(server.port, 'cpp', 2);
  assert.equal(refused.code, 0, refused.output);
  assert.equal(refused.output.split('cpp increments: claimed by someone else').length - 1, 2, refused.output);
  assert.match(refused.output, /cpp done: counter 20, 16 events confirmed, 0 invalidated/);
  await sleep(50);
  assert.deepEqual(bob.take().filter((f) => f.includes('stream/')), []);
  assert.equal(alice.invalidated.length, 0);
  assert.equal(bob.invalidated.length, 0);
  const fromServer = await server.command('state');
  assert.deepEqual(fromServer, { counter: 20, claim: 'alice', size: 16 });
  for (const p of [alice, bob]) {
    assert.deepEqual(p.stream.sourceState, { counter: fromServer.counter, claim: fromServer.claim });
    assert.equal(p.stream.optimisticEvents.length, 0);
    await p.client.leave();
  }
});

test('our C++ WebSocketClient against the real @krmx/server@0.5.5', async () => {
  const server = createServer({ logger: false });
  server.on('message', (username, message) => server.send(username, { type: 'echo', payload: message }));
  const port = await server.listen(0);
  try {
    const output = await new Promise((resolve, reject) => {
      const child = spawn(peerBinary, [...peerArgs, 'client', String(port), 'cpp'], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.add(child);
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('exit', (code) => {
        children.delete(child);
        if (code === 0) resolve(JSON.parse(out)); else reject(new Error(`interop_client exited ${code}: ${out}`));
      });
    });
    assert.equal(output.answered, true);
    assert.deepEqual(output.frames, [accepted, joined('cpp'), linked('cpp'), unlinked('cpp')]);
    assert.deepEqual(output.messages.map((m) => JSON.parse(m)),
      [{ type: 'echo', payload: { type: 'hello', payload: { from: 'c++' } } }]);
    assert.deepEqual(server.getUsers(), [{ username: 'cpp', isLinked: false }]);
  } finally {
    await server.close();
  }
});

let failed = 0;
for (const { name, fn } of tests) {
  const server = await startCppServer();
  try {
    await fn(server);
    console.log(`ok   ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}\n${error.stack}`);
  } finally {
    try {
      await server.stop();
    } catch (error) {
      failed += 1;
      console.log(`FAIL ${name}: stopping the server: ${error.message}`);
    }
  }
}
clearTimeout(deadline);
console.log(failed === 0 ? `all ${tests.length} interop tests passed` : `${failed} interop test(s) failed`);
process.exit(failed === 0 ? 0 : 1);
