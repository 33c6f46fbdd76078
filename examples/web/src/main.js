// The claimable counter in a browser tab: one player per tab, on the real @krmx/client@0.5.4 and the
// StreamModel of @krmx/state@0.0.1, against krmx-cpp's C++ server (counter_server --web), which also
// served this page. Shows what the library is for: a move applies at once (optimistic), is confirmed or
// refused by the server (with its reason), a late joiner rebuilds from the history, and a lost
// connection is retried until the server is back.
//
// URL parameters: ?name=alice fills in the name; ?delay=MS holds each outgoing move back that long, so
// that the optimistic state can be seen ahead of the confirmed one.
import { createClient } from '@krmx/client';
import { isStreamAppendMessage } from '@krmx/state';
import { counterModel } from './counter.js';

const domain = 'counter';
const optimisticSeconds = 10;
const { model, increment, claim, release } = counterModel();
const stream = model.spawn({ optimisticSeconds });
const params = new URLSearchParams(window.location.search);
const sendDelay = Math.max(0, Number(params.get('delay')) || 0);
const serverUrl = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/`;

const view = {
  username: undefined,   // set once the player joined
  everLinked: false,     // after a first link, a refused relink is retried (the old socket may linger)
  connection: 'not joined',
  confirmed: stream.initialState,
  optimistic: stream.initialState,
  pending: [],           // { id, event, at }: sent, neither confirmed nor refused yet
  refusals: [],          // { event, reason }, newest first
  users: [],
};
let nextId = 1;
let reconnectTimer;
let retries = 0;

const client = createClient({ logger: false });
stream.onChange((state) => { view.confirmed = state; render(); });
stream.onOptimisticChange((state) => { view.optimistic = state; render(); });

// @krmx/state's Stream has no way to drop one optimistic event: when the server refuses one, or it
// expires, its optimistic layer is flushed and what is still pending is applied again, in order.
function replayPending() {
  stream.flushOptimisticState();
  for (const p of view.pending) stream.dispatch(view.username, p.event, true);
}

function dispatch(event) {
  if (client.getStatus() !== 'linked') return;
  const id = nextId;
  nextId += 1;
  view.pending.push({ id, event, at: Date.now() });
  stream.dispatch(view.username, event, true);
  const send = () => {
    if (client.getStatus() === 'linked') {
      client.send({ type: 'stream/append', payload: { domain, dispatcher: view.username, event, id } });
    }
  };
  if (sendDelay > 0) setTimeout(send, sendDelay); else send();
  render();
}

client.on('message', (message) => {
  if (message.type === 'stream/invalidate' && message.payload?.domain === domain) {
    const { id, event, reason } = message.payload;
    view.pending = view.pending.filter((p) => p.id !== id);
    view.refusals.unshift({ event, reason });
    replayPending();
    render();
    return;
  }
  if (!isStreamAppendMessage(message) || message.payload.domain !== domain) return;
  const { dispatcher, event, id } = message.payload;
  if (dispatcher === view.username && id !== undefined) {
    view.pending = view.pending.filter((p) => p.id !== id);
  }
  stream.dispatch(dispatcher, event);
});

// On its own link (and unlink) a client starts over: the history that follows rebuilds the stream.
const onSelf = (username) => {
  if (username === view.username) {
    view.pending = [];
    stream.reset();
  }
  refreshUsers();
};
const refreshUsers = () => { view.users = client.getUsers(); render(); };
client.on('link', onSelf);
client.on('unlink', onSelf);
client.on('join', refreshUsers);
client.on('leave', refreshUsers);
client.on('close', () => {
  view.users = [];
  if (view.username !== undefined) scheduleReconnect();
  render();
});

// @krmx/client does not reconnect by itself: retry, a little slower each time, up to 2 s apart.
function scheduleReconnect() {
  clearTimeout(reconnectTimer);
  view.connection = 'connection lost, reconnecting...';
  const wait = Math.min(2000, 200 * 2 ** Math.min(retries, 4));
  retries += 1;
  reconnectTimer = setTimeout(() => { connectAndLink().catch(() => {}); }, wait);
}

async function connectAndLink() {
  if (client.getStatus() === 'initializing' || client.getStatus() === 'closed') {
    view.connection = 'connecting...';
    render();
    await client.connect(serverUrl); // on failure 'close' schedules the next try
  }
  if (client.getStatus() !== 'connected') return;
  view.connection = 'linking...';
  render();
  try {
    await client.link(view.username);
    retries = 0;
    view.connection = `linked as ${view.username}`;
  } catch (error) {
    // A refusal (a bad name, or the old connection still counts as linked) is shown; a name that will
    // never do lets the player pick another.
    view.connection = `refused: ${error.message}`;
    if (/invalid username|already linked|not accepting/.test(error.message) && retries === 0 && !view.everLinked) {
      view.username = undefined;
      setJoinEnabled(true);
    } else {
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(() => { connectAndLink().catch(() => {}); }, 1000);
    }
  }
  if (client.getStatus() === 'linked') view.everLinked = true;
  render();
}

// --- the page --------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const describe = (event) => (event.payload === undefined ? event.type : `${event.type} ${JSON.stringify(event.payload)}`);
const claimText = (state) => state.claim ?? 'nobody';

function list(element, items, render) {
  element.replaceChildren(...items.map((item) => {
    const li = document.createElement('li');
    render(li, item);
    return li;
  }));
}

function render() {
  const linked = client.getStatus() === 'linked';
  $('connection').textContent = view.connection;
  $('connection').dataset.linked = String(linked);
  $('player').textContent = view.username ?? '';
  $('optimistic-counter').textContent = String(view.optimistic.counter);
  $('optimistic-claim').textContent = claimText(view.optimistic);
  $('confirmed-counter').textContent = String(view.confirmed.counter);
  $('confirmed-claim').textContent = claimText(view.confirmed);
  for (const id of ['increment', 'claim', 'release']) $(id).disabled = !linked;
  list($('pending'), view.pending, (li, p) => { li.textContent = `${describe(p.event)}: sending...`; });
  list($('refusals'), view.refusals.slice(0, 8), (li, r) => {
    li.textContent = `${describe(r.event)} refused: ${r.reason}`;
    li.dataset.reason = r.reason;
    li.dataset.type = r.event?.type ?? '';
  });
  list($('users'), view.users, (li, u) => {
    li.textContent = `${u.username}${u.username === view.username ? ' (you)' : ''}`;
    li.dataset.username = u.username;
    li.dataset.linked = String(u.isLinked);
    li.className = u.isLinked ? 'linked' : 'away';
  });
}

function setJoinEnabled(enabled) {
  $('name').disabled = !enabled;
  $('join').disabled = !enabled;
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  if (name === '' || view.username !== undefined) return;
  view.username = name;
  setJoinEnabled(false);
  connectAndLink().catch(() => {});
});
$('increment').addEventListener('click', () => dispatch(increment(1)));
$('claim').addEventListener('click', () => dispatch(claim()));
$('release').addEventListener('click', () => dispatch(release()));

// Moves the server never answered leave the optimistic layer after optimisticSeconds.
setInterval(() => {
  const before = view.pending.length;
  view.pending = view.pending.filter((p) => Date.now() - p.at < optimisticSeconds * 1000);
  if (view.pending.length !== before) {
    replayPending();
    render();
  }
}, 1000);

$('name').value = params.get('name') ?? '';
render();
