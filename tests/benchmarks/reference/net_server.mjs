// The Node side of the network load benchmark (tests/benchmarks/run_net_load.sh): @krmx/server@0.5.5 with
// the claimable counter on @krmx/state@0.0.1 and the few lines of Krmx State's registerStream (server side,
// from @krmx/state-server, which is not on npm): validate with Stream.dispatch, keep the history, broadcast
// `stream/append`, send the history as appends on link. Prints {"port":N}; stops on SIGINT/SIGTERM.
//   node net_server.mjs [PORT] [--rooms]
// --rooms: besides "counter", every domain named room<N> is a counter of its own, registered the same way
// (the load generator's rooms mode). @krmx/server has no audiences, so each room's appends go to every
// linked user, as they would for a user of it who registers one stream per room.
import { createRequire } from 'node:module';
import process from 'node:process';

process.env.NODE_ENV ??= 'production'; // immer's production build, as a deployed server runs
const require = createRequire(import.meta.url);
const { createServer } = require('@krmx/server');
const { StreamModel, isStreamAppendMessage } = require('@krmx/state');
const { z } = require('zod');

const model = new StreamModel({ counter: 0, claim: undefined });
model.when('increment', z.number(), (state, dispatcher, payload) => {
  if (state.claim !== undefined && state.claim !== dispatcher) throw new Error('claimed by someone else');
  state.counter += payload;
});
model.when('claim', z.undefined(), (state, dispatcher) => {
  if (state.claim !== undefined) throw new Error('already claimed');
  state.claim = dispatcher;
});
model.when('release', z.undefined(), (state, dispatcher) => {
  if (state.claim !== dispatcher) throw new Error('claimed by someone else');
  state.claim = undefined;
});

const server = createServer({ logger: false });
const args = process.argv.slice(2);
const rooms = args.includes('--rooms');
// registerStream(server, domain, model), server side, for each domain
const domains = new Map(); // name -> { stream, history }
const domainOf = (name) => {
  let d = domains.get(name);
  if (d === undefined && (name === 'counter' || (rooms && /^room[0-9]+$/.test(name)))) {
    d = { stream: model.spawn({ optimisticSeconds: 10 }), history: [] };
    domains.set(name, d);
  }
  return d;
};
domainOf('counter');
server.on('link', (username) => {
  for (const { history } of domains.values()) {
    for (const payload of history) server.send(username, { type: 'stream/append', payload });
  }
});
server.on('message', (username, message) => {
  if (!isStreamAppendMessage(message)) return;
  const domain = message.payload.domain;
  const d = domainOf(domain);
  if (d === undefined) return;
  const event = message.payload.event;
  if (d.stream.dispatch(username, event) !== true) return;
  const payload = { domain, dispatcher: username, event };
  d.history.push(payload);
  server.broadcast({ type: 'stream/append', payload });
});

const port = await server.listen(Number(args.find((a) => /^[0-9]+$/.test(a)) ?? 0));
console.log(JSON.stringify({ port }));
const stop = () => { server.close().then(() => process.exit(0)); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
