// Reference benchmark: the TypeScript Krmx State Stream model (@krmx/state@0.0.1) under Node.
//
// Runs the same workloads as the krmx-cpp Google Benchmark binary so that the two can be compared
// side by side (see ../run_side_by_side.sh). Every workload drives the package's own code
// (StreamModel.when / spawn, Stream.dispatch, isStreamAppendMessage). The server and client glue
// (@krmx/state-server, @krmx/state-client-react) is not published on npm, so its few lines are
// mirrored below from the krmx repository (state/server/src/models/stream/index.ts and
// state/client-react/src/models/stream/index.ts), minus the network. See README.md.
//
// Usage: node bench.mjs [--quick]
// Output: one JSON object on stdout {"typed_dispatch": <ops/s>, ...}; diagnostics on stderr.

import { createRequire } from 'node:module';
import process from 'node:process';

// immer (used by Stream.dispatch) ships a development build with extra checks, chosen at require
// time from NODE_ENV. A deployed server runs the production build, so that is the default here.
if (process.env.NODE_ENV === undefined) {
  process.env.NODE_ENV = 'production';
}

const require = createRequire(import.meta.url);
const { StreamModel, ProjectionModel, isStreamAppendMessage, VERSION } = require('@krmx/state');
const { z } = require('zod');

const quick = process.argv.includes('--quick');
const settings = quick
  ? { warmupNs: 0, reps: 1, minRepNs: 20e6 }
  : { warmupNs: 500e6, reps: 5, minRepNs: 500e6 };

const log = (...args) => console.error(...args);

// ---------------------------------------------------------------------------------------------
// The claimable counter of Krmx State's documentation, with exactly its handlers.
// ---------------------------------------------------------------------------------------------
function defineClaimableCounter(initialState) {
  const model = new StreamModel(initialState);
  const increment = model.when('increment', z.number(), (state, dispatcher, payload) => {
    if (state.claim !== undefined && state.claim !== dispatcher) {
      throw new Error('claimed by someone else');
    }
    state.counter += payload;
  });
  const claim = model.when('claim', z.undefined(), (state, dispatcher) => {
    if (state.claim !== undefined) {
      throw new Error('already claimed');
    }
    state.claim = dispatcher;
  });
  const release = model.when('release', z.undefined(), (state, dispatcher) => {
    if (state.claim !== dispatcher) {
      throw new Error('claimed by someone else');
    }
    state.claim = undefined;
  });
  return { model, increment, claim, release };
}

const BIG_SIZE = 100_000;
const tiny = defineClaimableCounter({ counter: 0, claim: undefined });
const big = defineClaimableCounter({
  counter: 0,
  claim: undefined,
  values: Array.from({ length: BIG_SIZE }, (_, i) => i),
});

const DOMAIN = 'counter';
const STREAM_PROPS = { optimisticSeconds: 10 };

// A sink so that V8 cannot drop work whose result is otherwise unused.
let sink = null;

// ---------------------------------------------------------------------------------------------
// Server side: mirrors registerStream() of @krmx/state-server (not on npm) without a transport.
// Broadcasting is reduced to handing the message object to a sink (no serialization, no sockets).
// With record = false only the package's part runs: Stream.dispatch, no history, no broadcast.
// ---------------------------------------------------------------------------------------------
function createServerSide(domain, model, props, {
  broadcast = (message) => { sink = message; },
  record = true,
} = {}) {
  const stream = model.spawn(props);
  let history = [];
  const dispatch = (dispatcher, event) => {
    const result = stream.dispatch(dispatcher, event);
    if (result !== true) {
      return false; // upstream: "TODO: optimistic event should be invalidated at the client"
    }
    if (!record) {
      return true;
    }
    const streamAppendMessage = { type: 'stream/append', payload: { domain, dispatcher, event } };
    history.push(streamAppendMessage.payload);
    broadcast(streamAppendMessage);
    return true;
  };
  // server.on('message', (username, message) => ...): the linked username is the dispatcher.
  const onMessage = (username, message) => {
    if (!isStreamAppendMessage(message) || message.payload.domain !== domain) {
      return;
    }
    dispatch(username, message.payload.event);
  };
  return {
    stream,
    dispatch,
    onMessage,
    history: () => history,
    reset: () => { stream.reset(); history = []; },
  };
}

// ---------------------------------------------------------------------------------------------
// Client side: mirrors registerStream() of @krmx/state-client-react (not on npm) without React
// and without a transport: sent messages are collected in an outbox.
// ---------------------------------------------------------------------------------------------
function createClientSide(domain, model, props, username) {
  const stream = model.spawn(props);
  let state = stream.initialState;
  stream.onOptimisticChange((s) => { state = s; });
  let emits = 0;
  const emit = () => { emits += 1; };
  const outbox = [];
  // client.on('message', ...)
  const onMessage = (message) => {
    if (!isStreamAppendMessage(message) || message.payload.domain !== domain) {
      return;
    }
    const result = stream.dispatch(message.payload.dispatcher, message.payload.event);
    if (result !== true) {
      return;
    }
    emit();
  };
  // the dispatch returned by registerStream: optimistic update, then send to the server
  const dispatch = (event) => {
    const result = stream.dispatch(username, event, true);
    if (result !== true) {
      return false;
    }
    emit();
    outbox.push({ type: 'stream/append', payload: { domain, dispatcher: username, event } });
    return true;
  };
  // on its own link/unlink the client resets the stream
  const reset = () => { state = stream.initialState; stream.reset(); emit(); };
  return { stream, onMessage, dispatch, reset, outbox, state: () => state, emits: () => emits };
}

// ---------------------------------------------------------------------------------------------
// Workloads. Each returns a batch function: batch() -> [timedNanoseconds, operations].
// ---------------------------------------------------------------------------------------------
const now = () => process.hrtime.bigint();

function typedDispatchWorkload(record) {
  const server = createServerSide(DOMAIN, tiny.model, STREAM_PROPS, { record });
  const CHUNK = 10_000;
  return () => {
    server.reset(); // keeps the recorded history bounded; not timed
    const t0 = now();
    for (let i = 0; i < CHUNK; i++) {
      sink = server.dispatch('alice', tiny.increment(1));
    }
    const t1 = now();
    return [Number(t1 - t0), CHUNK];
  };
}

const JSON_TEXT = '{"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice",'
  + '"event":{"type":"increment","payload":3},"id":17}}';

function jsonDispatchWorkload(record) {
  const server = createServerSide(DOMAIN, tiny.model, STREAM_PROPS, { record });
  const CHUNK = 10_000;
  return () => {
    server.reset();
    const t0 = now();
    for (let i = 0; i < CHUNK; i++) {
      server.onMessage('alice', JSON.parse(JSON_TEXT));
    }
    const t1 = now();
    return [Number(t1 - t0), CHUNK];
  };
}

function optimisticConfirmWorkload(pending) {
  // The real round trip: the client dispatches `pending` optimistic events (untimed), the server
  // validates them and broadcasts its stream/append messages (untimed), then the client receives
  // those append messages one by one, each confirming its oldest pending event (timed).
  const confirmations = [];
  const server = createServerSide(DOMAIN, tiny.model, STREAM_PROPS, {
    // through the wire format, as a real client receives them (untimed)
    broadcast: (m) => confirmations.push(JSON.parse(JSON.stringify(m))),
  });
  const client = createClientSide(DOMAIN, tiny.model, STREAM_PROPS, 'alice');
  return () => {
    server.reset();
    client.reset();
    confirmations.length = 0;
    client.outbox.length = 0;
    for (let i = 0; i < pending; i++) {
      client.dispatch(tiny.increment(1));
    }
    for (const message of client.outbox) {
      server.onMessage('alice', message);
    }
    if (confirmations.length !== pending) {
      throw new Error(`server confirmed ${confirmations.length} of ${pending}`);
    }
    const t0 = now();
    for (let i = 0; i < pending; i++) {
      client.onMessage(confirmations[i]);
    }
    const t1 = now();
    return [Number(t1 - t0), pending];
  };
}

function rejectedWorkload(definition) {
  // The package's authoritative apply (Stream.dispatch) of an increment by bob while alice holds
  // the claim. Note: 0.0.1 swallows handler errors and still returns true, so the server glue
  // cannot tell a rejection apart; we time Stream.dispatch itself (see README.md).
  const stream = definition.model.spawn(STREAM_PROPS);
  stream.dispatch('alice', definition.claim());
  const CHUNK = 10_000;
  return () => {
    const t0 = now();
    for (let i = 0; i < CHUNK; i++) {
      sink = stream.dispatch('bob', definition.increment(1));
    }
    const t1 = now();
    return [Number(t1 - t0), CHUNK];
  };
}

// ---------------------------------------------------------------------------------------------
// Projection rooms: 100 rooms of 8 players on @krmx/state's ProjectionServer, each player a view of its
// own score and last 8 moves, everyone's scores and the round (bench_projection.cpp runs the same model).
// An action is a message text parsed, dispatched with its optimisticId, and answered with each member's
// `diff` (ProjectionServer's), written as the projection/delta message a server sends (JSON.stringify).
// ---------------------------------------------------------------------------------------------
function scoresModel() {
  const model = new ProjectionModel({ players: {}, round: 0 }, (state, user) => ({
    you: state.players[user] ?? { score: 0, secret: [] },
    scores: Object.fromEntries(Object.entries(state.players).map(([name, p]) => [name, p.score])),
    round: state.round,
  }));
  model.when('move', z.number().int(), (state, dispatcher, n) => {
    if (state.players[dispatcher] === undefined) state.players[dispatcher] = { score: 0, secret: [] };
    const p = state.players[dispatcher];
    p.score += n;
    p.secret.push(n);
    if (p.secret.length > 8) p.secret.shift();
    state.round += 1;
  });
  return model;
}

function projectionRoomsWorkload() {
  const ROOMS = 100;
  const PLAYERS = 8;
  const model = scoresModel();
  const rooms = [];
  let bytes = 0;
  for (let r = 0; r < ROOMS; r++) {
    const server = model.spawnServer();
    const domain = `room-${r}`;
    const users = Array.from({ length: PLAYERS }, (_, p) => `p${r}-${p}`);
    const room = { server, users, sender: undefined, texts: [] };
    server.subscribe((deltaFor, optimisticId) => {
      for (const user of users) {
        const delta = deltaFor(user);
        const own = user === room.sender ? optimisticId : undefined;
        if (delta === false && own === undefined) continue;
        bytes += JSON.stringify({
          type: 'projection/delta', payload: { domain, delta: delta === false ? { _t: 'a' } : delta, optimisticId: own },
        }).length;
      }
    });
    room.texts = users.map((user, p) => JSON.stringify({
      type: 'projection/action',
      payload: { domain, action: { type: 'move', payload: 1 + p }, optimisticId: `opt0-5b1c2e7a-8d0f-4c61-9a3e-${100000 + r * 10 + p}` },
    }));
    rooms.push(room);
  }
  const act = (r, p) => {
    const room = rooms[r];
    const message = JSON.parse(room.texts[p]);
    room.sender = room.users[p];
    const result = room.server.dispatch(room.sender, message.payload.action, message.payload.optimisticId);
    if (!result.success) throw new Error(`refused: ${result.error}`);
  };
  for (let r = 0; r < ROOMS; r++) for (let p = 0; p < PLAYERS; p++) act(r, p); // everyone in every view
  const CHUNK = 1000;
  let next = 0;
  return () => {
    const t0 = now();
    for (let i = 0; i < CHUNK; i++) {
      act(next % ROOMS, Math.floor(next / ROOMS) % PLAYERS);
      next += 1;
    }
    const t1 = now();
    sink = bytes;
    return [Number(t1 - t0), CHUNK];
  };
}

// ---------------------------------------------------------------------------------------------
// Sanity checks: the workloads really exercise the intended package paths.
// ---------------------------------------------------------------------------------------------
function check(condition, message) {
  if (!condition) {
    throw new Error(`sanity check failed: ${message}`);
  }
}

function sanityChecks() {
  {
    const server = createServerSide(DOMAIN, tiny.model, STREAM_PROPS);
    const probe = tiny.model.spawn(STREAM_PROPS);
    let state;
    probe.onChange((s) => { state = s; });
    probe.dispatch('alice', tiny.increment(1));
    check(state.counter === 1, 'typed increment applies');
    server.onMessage('alice', JSON.parse(JSON_TEXT));
    check(server.history().length === 1 && server.history()[0].event.payload === 3, 'json append recorded');
    check(probe.dispatch('alice', { type: 'increment', payload: 'x' }) !== true, 'invalid payload refused');
  }
  for (const definition of [tiny, big]) {
    const stream = definition.model.spawn(STREAM_PROPS);
    let state;
    stream.onChange((s) => { state = s; });
    stream.dispatch('alice', definition.claim());
    check(state.claim === 'alice', 'alice holds the claim');
    const before = state;
    stream.dispatch('bob', definition.increment(1));
    check(state === before && state.counter === 0, 'rejected increment leaves the state unchanged');
  }
  {
    const client = createClientSide(DOMAIN, tiny.model, STREAM_PROPS, 'alice');
    const server = createServerSide(DOMAIN, tiny.model, STREAM_PROPS, { broadcast: (m) => client.onMessage(m) });
    for (let i = 0; i < 10; i++) client.dispatch(tiny.increment(1));
    check(client.stream.optimisticEvents.length === 10, 'ten optimistic events pending');
    check(client.state().counter === 10, 'optimistic state shows pending events');
    for (let i = 0; i < 5; i++) server.onMessage('alice', client.outbox[i]);
    check(client.stream.optimisticEvents.length === 5, 'five confirmed, five pending');
    check(client.state().counter === 10, 'optimistic state unchanged by confirmations');
    for (let i = 5; i < 10; i++) server.onMessage('alice', client.outbox[i]);
    check(client.stream.optimisticEvents.length === 0, 'all confirmed');
    check(client.state().counter === 10, 'confirmed state reached');
  }
}

// ---------------------------------------------------------------------------------------------
// Harness: warm up, then `reps` repetitions of at least `minRepNs` timed nanoseconds each;
// report the median rate.
// ---------------------------------------------------------------------------------------------
function measure(name, batch) {
  let warm = 0;
  batch(); // at least one untimed round, even in quick mode (first-call compilation)
  while (warm < settings.warmupNs) {
    warm += batch()[0];
  }
  const rates = [];
  for (let r = 0; r < settings.reps; r++) {
    let ns = 0;
    let ops = 0;
    while (ns < settings.minRepNs) {
      const [dt, n] = batch();
      ns += dt;
      ops += n;
    }
    rates.push((ops * 1e9) / ns);
  }
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  log(`${name.padEnd(24)} median ${fmt(median)} ops/s   reps: ${rates.map(fmt).join(', ')}`);
  return median;
}

function fmt(x) {
  if (x >= 1e6) return `${(x / 1e6).toFixed(3)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)} k`;
  return x.toFixed(1);
}

function main() {
  log(`@krmx/state ${VERSION ?? '?'}, zod ${require('zod/package.json').version}, `
    + `immer ${require('immer/package.json').version} (NODE_ENV=${process.env.NODE_ENV}), `
    + `node ${process.version}${quick ? ' (quick mode)' : ''}`);
  if (!process.version.startsWith('v20.')) {
    log(`warning: the reference figures are defined for Node 20; this is ${process.version}`);
  }
  sanityChecks();
  // [name, make, reported]: unreported ones are diagnostics, printed on stderr only.
  const workloads = [
    ['typed_dispatch', () => typedDispatchWorkload(false), true],
    ['typed_dispatch+record', () => typedDispatchWorkload(true), false],
    ['json_dispatch', () => jsonDispatchWorkload(false), true],
    ['json_dispatch+record', () => jsonDispatchWorkload(true), false],
    ['optimistic_confirm_100', () => optimisticConfirmWorkload(100), true],
    ['optimistic_confirm_1000', () => optimisticConfirmWorkload(1000), true],
    ['rejected_big', () => rejectedWorkload(big), true],
    ['rejected_tiny', () => rejectedWorkload(tiny), true],
    ['projection_rooms', () => projectionRoomsWorkload(), true],
  ];
  const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const results = {};
  for (const [name, make, reported] of workloads) {
    if (only.length > 0 && !only.includes(name)) continue;
    const rate = measure(name, make());
    if (reported) results[name] = rate;
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main();
