// Reads the texts krmx's scanner accepted (one JSON line each: {"text": ..., "canon": ...}) and checks that
// JavaScript's JSON.parse reads each one as nlohmann/json did. Prints "N agreed" or the first disagreements
// and exits 1. Canonical form: numbers as the bits of a double (-0 as 0: nlohmann reads "-0" as 0),
// strings and keys as the hex of their UTF-8 bytes, keys sorted.
import { readFileSync } from 'node:fs';

const bits = new DataView(new ArrayBuffer(8));
function canon(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    bits.setFloat64(0, Object.is(v, -0) ? 0 : v);
    return 'n' + bits.getBigUint64(0).toString(16).padStart(16, '0');
  }
  if (typeof v === 'string') return 's' + Buffer.from(v, 'utf8').toString('hex');
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  const entries = Object.keys(v).map((k) => ['s' + Buffer.from(k, 'utf8').toString('hex'), canon(v[k])]);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return '{' + entries.map(([k, x]) => k + ':' + x).join(',') + '}';
}

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length > 0);
let bad = 0;
for (const line of lines) {
  const { text, canon: expected } = JSON.parse(line);
  let got;
  try {
    got = canon(JSON.parse(text));
  } catch (e) {
    got = 'refused: ' + e.message;
  }
  if (got !== expected) {
    if (++bad <= 5) console.log(`disagree on ${JSON.stringify(text)}\n  nlohmann: ${expected}\n  JSON.parse: ${got}`);
  }
}
console.log(`${lines.length - bad} agreed, ${bad} disagreed`);
process.exit(bad === 0 && lines.length > 0 ? 0 : 1);
