// The differential test of krmx's json_diff/json_patch against the real jsondiffpatch 0.5.0 (what
// @krmx/state's projections run), both ways:
//   1. json_delta_peer writes random pairs and json_diff's deltas; jsondiffpatch.patch(clone(from), delta)
//      must deep-equal `to`.
//   2. Random pairs made here are diffed by jsondiffpatch.diff (moves, text diffs); the peer applies each
//      delta with json_patch and compares with `to`.
// Usage: node json_delta.mjs PEER [PEER_ARGUMENT...] [-- SEED1 SEED2 [COUNT]] (PEER: the command of
// tests/core/json_delta_peer.cpp, krmx_core_tests --krmx-child krmx_json_delta_peer). The seeds are
// printed: a failure replays with them.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const args = process.argv.slice(2);
const split = args.includes('--') ? args.indexOf('--') : args.length;
const [peer, ...peerArgs] = args.slice(0, split);
const [seedArg1, seedArg2, countArg] = args.slice(split + 1);
if (!peer) {
  console.error('usage: node json_delta.mjs PEER [PEER_ARGUMENT...] [-- SEED1 SEED2 [COUNT]]');
  process.exit(2);
}
const seed1 = Number(seedArg1 ?? 20260611);
const seed2 = Number(seedArg2 ?? 20260612);
const count = Number(countArg ?? 5000);

// jsondiffpatch as @krmx/state loads it: require() of its CommonJS build, with diff-match-patch beside it
// (so text diffs are on), from the packages tests/net/js pins.
const require = createRequire(new URL('../../net/js/package.json', import.meta.url));
let jsondiffpatch;
try {
  jsondiffpatch = require('jsondiffpatch');
} catch (e) {
  console.error(`jsondiffpatch not found (run npm ci in tests/net/js): ${e.message}`);
  process.exit(1);
}

const maxBuffer = 1 << 28;
const shorten = (text) => {
  if (text === undefined) return '(none)';
  return text.length <= 2000 ? text : `${text.slice(0, 2000)}... (${text.length} chars)`;
};

// Deep equality of JSON values: numbers by ===, so 0 and -0 are one number (as in nlohmann's comparison).
function same(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
}

// ---- direction 1: C++'s deltas, patched by jsondiffpatch ----
function direction1() {
  const started = Date.now();
  const run = spawnSync(peer, [...peerArgs, 'generate', String(seed1), String(count)], { encoding: 'utf8', maxBuffer });
  if (run.status !== 0) {
    console.log(`direction 1 (seed ${seed1}): the peer failed (status ${run.status}, ${run.error ?? ''})`);
    console.log(run.stderr);
    return false;
  }
  const lines = run.stdout.split('\n').filter((l) => l.length > 0);
  let patched = 0;
  let equal = 0;
  let failed = 0;
  lines.forEach((line, index) => {
    const { from, to, delta } = JSON.parse(line);
    let problem;
    let got;
    if (delta === undefined) {
      ++equal;
      if (!same(from, to)) problem = 'json_diff wrote no delta, but from and to differ in JavaScript';
    } else {
      ++patched;
      if (same(from, to)) problem = 'json_diff wrote a delta for values JavaScript sees as equal';
      try {
        got = jsondiffpatch.patch(jsondiffpatch.clone(from), delta);
        if (!problem && !same(got, to)) problem = 'jsondiffpatch.patch(from, delta) is not to';
      } catch (e) {
        problem = `jsondiffpatch.patch threw: ${e.message}`;
      }
    }
    if (problem && ++failed === 1) {
      console.log(`direction 1, first failure, case ${index} (seed ${seed1}): ${problem}`);
      console.log(`  from:  ${shorten(JSON.stringify(from))}\n  delta: ${shorten(JSON.stringify(delta))}`);
      console.log(`  to:    ${shorten(JSON.stringify(to))}\n  got:   ${shorten(JSON.stringify(got))}`);
    }
  });
  console.log(`direction 1 (seed ${seed1}): ${patched} deltas of json_diff patched by jsondiffpatch, ${equal} equal ` +
              `pairs; ${failed} failed (${Date.now() - started} ms)`);
  return failed === 0 && lines.length === count;
}

// ---- direction 2: jsondiffpatch's deltas, applied by json_patch ----

// xorshift32: small, seeded, the same on every Node.
function random(seed) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const below = (n) => next() % n;
  return { next, below, chance: (percent) => below(100) < percent };
}

function generator(seed) {
  const { next, below, chance } = random(seed);
  const pick = (list) => list[below(list.length)];
  // Integers within +-2^53: every JSON number is a double here, and C++ reads an integer exactly, so beyond
  // 2^53 the two sides would not hold the same number.
  const number = () => {
    switch (below(8)) {
      case 0: return below(21) - 10;
      case 1: return below(2000001) - 1000000;
      case 2: return 2 ** 53 - below(4);
      case 3: return -(2 ** 53) + below(4);
      case 4: return (below(2001) - 1000) / 8;
      case 5: return ((next() / 2 ** 32) - 0.5) * 10 ** (below(40) - 20);
      case 6: return pick([-0, 0.1, 1e-300, 5e-324, 1.7976931348623157e308, -2.5e21, 3]);
      default: return below(100);
    }
  };
  const chars = ['a', 'b', 'c', 'x', 'y', ' ', '%', '"', '\\', '/', '\n', '#', '+', '&', '=', '?', '\x01', 'é', '中',
                 '😀', '😁', '\uffff', '~', "'", '@', ',', ';', '.'];
  const words = ['the ', 'quick ', 'brown ', 'fox ', 'jumps ', 'over ', 'lazy ', 'dog ', 'again, ', 'naïve ', 'café ',
                 '日本 ', '😀 '];
  const string = (long) => {
    let out = '';
    if (long) {
      for (let i = 12 + below(30); i > 0; --i) out += pick(words);
      return out;
    }
    for (let i = below(8); i > 0; --i) out += pick(chars);
    return out;
  };
  // No "_t" (jsondiffpatch's diff writes {"_t": [..]}, which its own patch reads as an array delta and
  // fails on), no "__proto__" and no names of Object.prototype (its diff skips or throws on them).
  const keys = ['a', 'b', 'c', 'id', 'name', 'items', 'score', '0', '1', '_1', '', 'é', 'a b'];
  const scalar = () => {
    switch (below(6)) {
      case 0: return null;
      case 1: return below(2) === 0;
      case 2: case 3: return number();
      default: return string(chance(40));  // long strings often: jsondiffpatch text-diffs them
    }
  };
  const value = (depth) => {
    const container = depth === 0 ? 90 : depth < 4 ? 40 : 0;
    if (!chance(container)) return scalar();
    const n = below(depth === 0 ? 8 : 5);
    if (below(2) === 0) return Array.from({ length: n }, () => value(depth + 1));
    const object = {};
    for (let i = 0; i < n; ++i) object[pick(keys)] = value(depth + 1);
    return object;
  };
  // A long string edited in a few places, at code point boundaries.
  const edit = (text) => {
    const cps = Array.from(text);
    for (let e = 1 + below(3); e > 0; --e) {
      const at = below(cps.length + 1);
      const inserted = Array.from({ length: below(6) }, () => pick(chars));
      cps.splice(at, Math.min(below(6), cps.length - at), ...inserted);
    }
    return cps.join('');
  };
  // Mutations share every unchanged subtree with the original, as immer's drafts do on a Krmx server: that
  // is how jsondiffpatch finds moved objects (by reference).
  const mutate = (v, depth) => {
    if (chance(10) || depth > 6) return value(depth + 1);
    if (Array.isArray(v)) {
      const out = v.slice();
      for (let op = 1 + below(4); op > 0; --op) {
        const r = below(12);
        if (out.length === 0 || r < 3) out.splice(below(out.length + 1), 0, value(depth + 1));
        else if (r < 5) out.splice(below(out.length), 1);
        else if (r < 7) {
          const [moved] = out.splice(below(out.length), 1);
          out.splice(below(out.length + 1), 0, moved);
        } else if (r < 8) out.splice(below(out.length + 1), 0, out[below(out.length)]);
        else {
          const i = below(out.length);
          out[i] = mutate(out[i], depth + 1);
        }
      }
      return out;
    }
    if (v !== null && typeof v === 'object') {
      const out = { ...v };
      for (let op = 1 + below(3); op > 0; --op) {
        const present = Object.keys(out);
        const r = below(10);
        if (present.length === 0 || r < 3) out[pick(keys)] = value(depth + 1);
        else if (r < 5) delete out[pick(present)];
        else {
          const k = pick(present);
          out[k] = mutate(out[k], depth + 1);
        }
      }
      return out;
    }
    if (typeof v === 'string' && v.length >= 60 && chance(80)) return edit(v);
    return chance(50) ? scalar() : value(depth + 1);
  };
  // Two long strings, heavily edited: text diffs of many hunks, long deletions and insertions, escapes.
  const textPair = () => {
    const pieces = [...chars, '%25', '@@ -1 +1 @@', '\u0000', 'x'.repeat(40)];
    const text = (n) => Array.from({ length: n }, () => pick(pieces)).join('');
    const cps = Array.from(text(20 + below(400)));
    const from = cps.join('');
    for (let e = below(6); e >= 0; --e) {
      const at = below(cps.length + 1);
      cps.splice(at, Math.min(below(below(4) === 0 ? 300 : 20), cps.length - at), ...Array.from(text(below(30))));
    }
    return [{ text: from }, { text: cps.join('') }];
  };
  return () => {
    const from = value(0);
    const r = below(20);
    if (r === 0) return [from, from];
    if (r === 1) return [from, value(0)];
    if (r === 2) return textPair();
    let to = mutate(from, 0);
    for (let rounds = below(3); rounds > 0; --rounds) to = mutate(to, 0);
    return [from, to];
  };
}

function direction2() {
  const started = Date.now();
  const pair = generator(seed2);
  const lines = [];
  let diffThrew = 0;
  let firstThrow;
  let selfFailed = 0;
  for (let i = 0; i < count; ++i) {
    const [from, to] = pair();
    let delta;
    try {
      delta = jsondiffpatch.diff(from, to);
    } catch (e) {
      // diff-match-patch can split a surrogate pair between two emoji, and its encodeURI then throws.
      ++diffThrew;
      firstThrow ??= e.message;
      continue;
    }
    // jsondiffpatch's own round trip, so that a failure below is json_patch's.
    const back = delta === undefined ? from : jsondiffpatch.patch(jsondiffpatch.clone(from), delta);
    if (!same(back, to)) {
      ++selfFailed;
      continue;
    }
    lines.push(JSON.stringify(delta === undefined ? { from, to } : { from, to, delta }));
  }
  const run = spawnSync(peer, [...peerArgs, 'apply'], { input: `${lines.join('\n')}\n`, encoding: 'utf8', maxBuffer });
  process.stdout.write(run.stdout);
  if (run.stderr) process.stdout.write(run.stderr);
  console.log(`direction 2 (seed ${seed2}): ${lines.length} pairs diffed by jsondiffpatch and sent to json_patch ` +
              `(${Date.now() - started} ms); left out: ${diffThrew} where jsondiffpatch.diff threw` +
              `${firstThrow ? ` (${firstThrow})` : ''}, ${selfFailed} where its own patch failed`);
  return run.status === 0 && lines.length > count * 0.9;
}

// The delta that changes nothing (krmx::no_change_delta, what a projection's sender gets when its view did
// not change) must leave every kind of value as it is.
function noChangeDelta() {
  const values = [null, true, 0, -2.5, '', 'text', [], [1, [2]], {}, { a: { b: [1, 2] }, _t: 'x' }];
  const bad = values.filter((v) => !same(jsondiffpatch.patch(structuredClone(v), { _t: 'a' }), v));
  console.log(`the no-change delta {"_t":"a"}: ${values.length - bad.length}/${values.length} values unchanged`);
  return bad.length === 0;
}

const ok1 = direction1();
const ok2 = direction2() && noChangeDelta();
if (!ok1 || !ok2) console.log(`FAILED; replay: node tests/core/js/json_delta.mjs ${[peer, ...peerArgs].join(' ')} -- ${seed1} ${seed2} ${count}`);
process.exit(ok1 && ok2 ? 0 : 1);
