// Prints the JavaScript a browser downloads on first load (the entry script and every chunk
// index.html preloads), gzipped, and fails above the budget. Run after `npm run build`.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 300 * 1000;
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const indexPath = join(dist, 'index.html');
if (!existsSync(indexPath)) {
  console.error('bundle-size: dist/index.html not found; run `npm run build` first.');
  process.exit(2);
}

const html = readFileSync(indexPath, 'utf8');
const firstLoad = new Set();
for (const match of html.matchAll(/<script[^>]*\ssrc="([^"]+\.js)"/g)) firstLoad.add(match[1]);
for (const match of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+\.js)"/g)) {
  firstLoad.add(match[1]);
}
for (const match of html.matchAll(/<link[^>]*href="([^"]+\.js)"[^>]*rel="modulepreload"/g)) {
  firstLoad.add(match[1]);
}
if (firstLoad.size === 0) {
  console.error('bundle-size: no script found in dist/index.html');
  process.exit(2);
}

const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const kb = (bytes) => `${(bytes / 1000).toFixed(1)} kB`;

let total = 0;
console.log('First-load JavaScript (gzipped):');
for (const url of firstLoad) {
  const size = gz(join(dist, url.replace(/^\//, '')));
  total += size;
  console.log(`  ${url.padEnd(44)} ${kb(size).padStart(10)}`);
}
const lazy = readdirSync(join(dist, 'assets'))
  .filter((name) => name.endsWith('.js') && !firstLoad.has(`/assets/${name}`))
  .reduce((sum, name) => sum + gz(join(dist, 'assets', name)), 0);
const css = readdirSync(join(dist, 'assets'))
  .filter((name) => name.endsWith('.css'))
  .reduce((sum, name) => sum + gz(join(dist, 'assets', name)), 0);
console.log(`  ${'total'.padEnd(44)} ${kb(total).padStart(10)}  (budget ${kb(BUDGET_BYTES)})`);
console.log(`Lazy-loaded JavaScript (gzipped): ${kb(lazy)}; CSS (gzipped): ${kb(css)}`);
if (total > BUDGET_BYTES) {
  console.error(`bundle-size: first-load JavaScript ${kb(total)} is over the ${kb(BUDGET_BYTES)} budget`);
  process.exit(1);
}
