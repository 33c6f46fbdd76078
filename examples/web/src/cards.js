// The card game with hidden hands in a browser tab: one player (or spectator) per tab, on the real
// @krmx/client@0.5.4 and the ProjectionClient of @krmx/state@0.0.1, against krmx-cpp's C++ server
// (counter_server --cards cards --web), which keeps the table and sends each player only its own view.
// A played card leaves the hand at once (optimistic); the server's delta confirms it, or its refusal puts it
// back. A lost connection is retried until the server is back. URL parameter: ?name=alice.
import { createClient } from '@krmx/client';
import { isProjectionDeltaMessage, isProjectionInvalidateMessage, isProjectionSetMessage } from '@krmx/state';
import { cardName, cardsModel, matches } from './cards_model.js';

const domain = 'cards';
const { model, sit, play, draw } = cardsModel();
let projection = model.spawnClient();
const params = new URLSearchParams(window.location.search);
const serverUrl = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/`;

const state = { username: undefined, everLinked: false, connection: 'not joined', view: undefined, refusals: [] };
const sent = new Map(); // optimisticId -> the action, to name a refusal
let reconnectTimer;
let retries = 0;

const client = createClient({ logger: false });
const watch = () => projection.subscribe((view) => { state.view = view; render(); });
watch();

function act(action) {
  if (client.getStatus() !== 'linked' || state.view === undefined) return;
  const result = projection.optimistic(state.username, action);
  if (!result.success) {
    state.refusals.unshift({ action, reason: String(result.error?.message ?? result.error) });
    render();
    return;
  }
  if (result.optimisticId !== undefined) sent.set(result.optimisticId, action);
  client.send({ type: 'projection/action', payload: { domain, action, optimisticId: result.optimisticId } });
}

client.on('message', (message) => {
  if (message.payload?.domain !== domain) return;
  if (isProjectionSetMessage(message)) {
    projection.set(message.payload.projection);
  } else if (isProjectionDeltaMessage(message)) {
    projection.apply(message.payload.delta, message.payload.optimisticId);
    sent.delete(message.payload.optimisticId);
  } else if (isProjectionInvalidateMessage(message)) {
    const { optimisticId, reason } = message.payload;
    state.refusals.unshift({ action: sent.get(optimisticId), reason });
    sent.delete(optimisticId);
    projection.releaseOptimistic(optimisticId);
  }
});

// On its own link and unlink the view is forgotten: the server sends the whole view after the link.
const onSelf = (username) => {
  if (username !== state.username) return;
  projection = model.spawnClient();
  watch();
  state.view = undefined;
  render();
};
client.on('link', onSelf);
client.on('unlink', onSelf);
client.on('close', () => {
  state.view = undefined;
  if (state.username !== undefined) scheduleReconnect();
  render();
});

// @krmx/client does not reconnect by itself: retry, a little slower each time, up to 2 s apart.
function scheduleReconnect() {
  clearTimeout(reconnectTimer);
  state.connection = 'connection lost, reconnecting...';
  const wait = Math.min(2000, 200 * 2 ** Math.min(retries, 4));
  retries += 1;
  reconnectTimer = setTimeout(() => { connectAndLink().catch(() => {}); }, wait);
}

async function connectAndLink() {
  if (client.getStatus() === 'initializing' || client.getStatus() === 'closed') {
    state.connection = 'connecting...';
    render();
    await client.connect(serverUrl); // on failure 'close' schedules the next try
  }
  if (client.getStatus() !== 'connected') return;
  state.connection = 'linking...';
  render();
  try {
    await client.link(state.username);
    retries = 0;
    state.everLinked = true;
    state.connection = `linked as ${state.username}`;
  } catch (error) {
    state.connection = `refused: ${error.message}`;
    if (!state.everLinked) {
      state.username = undefined;
      $('name').disabled = false;
      $('join').disabled = false;
    } else {
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(() => { connectAndLink().catch(() => {}); }, 1000);
    }
  }
  render();
}

// --- the page --------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

function render() {
  const linked = client.getStatus() === 'linked';
  const view = state.view;
  $('connection').textContent = state.connection;
  $('connection').dataset.linked = String(linked);
  $('player').textContent = state.username ?? '';
  $('top').textContent = view?.top == null ? 'none' : cardName(view.top);
  $('top').dataset.card = view?.top == null ? '' : String(view.top);
  $('deck').textContent = String(view?.deck ?? 0);
  $('turn').textContent = view?.turn ?? '';
  $('winner').textContent = view?.winner ? `${view.winner} won` : '';
  $('held').replaceChildren(...Object.entries(view?.held ?? {}).map(([name, count]) => {
    const li = document.createElement('li');
    li.textContent = `${name}: ${count} cards${name === state.username ? ' (you)' : ''}`;
    li.dataset.player = name;
    li.dataset.count = String(count);
    return li;
  }));
  const myTurn = linked && view?.turn === state.username;
  $('hand').replaceChildren(...(view?.hand ?? []).map((card) => {
    const button = document.createElement('button');
    button.textContent = cardName(card);
    button.dataset.card = String(card);
    button.className = view.top != null && matches(card, view.top) ? 'playable' : '';
    button.disabled = !linked;
    button.addEventListener('click', () => act(play(card)));
    return button;
  }));
  $('sit').disabled = !linked || view === undefined || view.turn !== '' || state.username in (view.held ?? {});
  $('draw').disabled = !myTurn;
  $('refusals').replaceChildren(...state.refusals.slice(0, 8).map((r) => {
    const li = document.createElement('li');
    li.textContent = `${r.action?.type ?? 'action'} refused: ${r.reason}`;
    li.dataset.reason = r.reason;
    return li;
  }));
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  if (name === '' || state.username !== undefined) return;
  state.username = name;
  $('name').disabled = true;
  $('join').disabled = true;
  connectAndLink().catch(() => {});
});
$('sit').addEventListener('click', () => act(sit()));
$('draw').addEventListener('click', () => act(draw()));

$('name').value = params.get('name') ?? '';
render();
