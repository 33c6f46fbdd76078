// What the JavaScript tests against our C++ processes share (tests/net/js, examples/web/test): waiting,
// starting counter_server and reading its port, stopping it, running a test under a deadline that stops
// every process also when an assertion fails, and reading a card player's frames.
import { spawn } from 'node:child_process';
import process from 'node:process';
import readline from 'node:readline';

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/// Polls a synchronous predicate until it holds; throws naming `what` after `ms`.
export async function until(predicate, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/// Starts examples/counter_server with `args` and waits for the port it prints (ws:// or wss://).
export async function startCounterServer(binary, args) {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const port = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /listening on wss?:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    exited.then((code) => reject(new Error(`server exited before listening: ${code}`)));
    setTimeout(() => reject(new Error('server did not listen within 20 s')), 20_000);
  });
  return { child, exited, port };
}

/// SIGTERM, then SIGKILL after `ms`: the server's exit code, or 'timeout'.
export async function stopServer(server, ms = 5000) {
  if (!server) return undefined;
  server.child.kill('SIGTERM');
  const code = await Promise.race([server.exited, sleep(ms).then(() => 'timeout')]);
  if (code === 'timeout') server.child.kill('SIGKILL');
  return code;
}

/// Runs `main`, then `cleanup` (also after a failure; false from it fails the test), and exits 0 or 1.
/// Past `deadlineMs`, `kill` stops every process at once and the test fails.
export async function runTest(name, { deadlineMs, main, kill, cleanup }) {
  const deadline = setTimeout(() => {
    console.error(`${name}: deadline of ${deadlineMs / 1000} s passed`);
    kill();
    process.exit(1);
  }, deadlineMs);
  let failed = false;
  try {
    await main();
  } catch (error) {
    failed = true;
    console.error(error);
  } finally {
    try {
      if ((await cleanup()) === false) failed = true;
    } catch (error) {
      failed = true;
      console.error(error);
    }
    clearTimeout(deadline);
  }
  process.exit(failed ? 1 : 0);
}

/// What the frames one player of examples/cards received show (`patch`: jsondiffpatch's, from the caller's
/// packages): `view`, what its set and deltas add up to; `seen`, every card that appeared in its hand (in a
/// view, or among the elements a delta of `hand` adds, replaces or deletes, not the 0s that mark a deletion
/// or a move); `leaks`, frames that carry the table's private members (every hand, the pile, the seats).
export function readCardFrames(frames, domain, patch) {
  const seen = new Set();
  const collect = (value) => {
    if (typeof value === 'number') seen.add(value);
    if (Array.isArray(value)) value.forEach(collect);
  };
  const collectDelta = (delta) => {
    if (Array.isArray(delta)) {
      delta.slice(0, 2).forEach(collect);
      return;
    }
    for (const [key, change] of Object.entries(delta)) {
      if (key === '_t' || !Array.isArray(change)) continue;
      if (change.length === 3) {
        if (change[2] === 0) collect(change[0]);
      } else {
        change.forEach(collect);
      }
    }
  };
  let view;
  const leaks = [];
  for (const text of frames) {
    const message = JSON.parse(text);
    if (message.payload?.domain !== domain) continue;
    if (/"hands"|"seats"|"pile"|"dealt"/.test(text)) leaks.push(text);
    if (message.type === 'projection/set') view = structuredClone(message.payload.projection);
    if (message.type === 'projection/delta') {
      if (message.payload.delta.hand !== undefined) collectDelta(message.payload.delta.hand);
      view = patch(view, message.payload.delta);
    }
    if (view?.hand) collect(view.hand);
  }
  return { seen, leaks, view };
}
