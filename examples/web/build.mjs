// Builds the web page into a folder the C++ server serves (counter_server --web FOLDER):
//   node build.mjs OUT_FOLDER
// index.html, cards.html and style.css are copied; src/main.js (the counter) and src/cards.js (the card
// game) with their npm packages (@krmx/client, @krmx/state, zod, immer, jsondiffpatch, ...) are bundled by
// rollup 3 (pure JavaScript) into app.js and cards.js for the browser.
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { rollup } from 'rollup';
import commonjs from '@rollup/plugin-commonjs';
import { nodeResolve } from '@rollup/plugin-node-resolve';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(here, 'dist'));

// What Node gives a package and a browser does not: `crypto` (see src/crypto-shim.js) and
// `process.env.NODE_ENV` (immer reads it to pick its checks).
const browserShims = {
  name: 'krmx-browser-shims',
  resolveId(id) {
    if (id === 'crypto' || id === 'node:crypto') return path.join(here, 'src', 'crypto-shim.js');
    return null;
  },
  transform(code) {
    if (!code.includes('process.env.NODE_ENV')) return null;
    return { code: code.replaceAll('process.env.NODE_ENV', '"production"'), map: null };
  },
};

const warnings = [];
await mkdir(out, { recursive: true });
// Two pages: the claimable counter (main.js -> app.js) and the card game (cards.js -> cards.js).
for (const [input, file] of [['main.js', 'app.js'], ['cards.js', 'cards.js']]) {
  const bundle = await rollup({
    input: path.join(here, 'src', input),
    plugins: [browserShims, nodeResolve({ browser: true, preferBuiltins: false }), commonjs()],
    onwarn(warning) {
      // `this` at the top of an ES module (TypeScript's helpers) and cycles inside a package are harmless;
      // anything else is shown.
      if (warning.code === 'THIS_IS_UNDEFINED') return;
      if (warning.code === 'CIRCULAR_DEPENDENCY' && warning.ids?.every((id) => id.includes('node_modules'))) return;
      warnings.push(warning);
    },
  });
  await bundle.write({ file: path.join(out, file), format: 'iife', name: 'krmxWeb' });
  await bundle.close();
}
for (const file of ['index.html', 'cards.html', 'style.css']) await copyFile(path.join(here, file), path.join(out, file));
for (const w of warnings) console.warn(`rollup: ${w.code}: ${w.message}`);
console.log(`web page built into ${out}`);
