// Prints the gzip size of the storefront's JavaScript and fails (exit 1) over the budget.
// Budget: 60 KB gzip for ALL JavaScript in the build — a superset of the purchase path, which is
// the entry chunk plus, with a real Toss client key, the SDK loader chunk, and with Supabase
// sign-in configured, the auth chunk (both loaded on demand).
import { readFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const BUDGET = 60 * 1024;
const dist = new URL('../dist/', import.meta.url).pathname;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const entry = [...html.matchAll(/<script[^>]+src="\/([^"]+\.js)"/g)].map((m) => m[1]);
const assets = readdirSync(join(dist, 'assets'));
const rows = assets
  .filter((f) => f.endsWith('.js'))
  .map((f) => {
    const bytes = readFileSync(join(dist, 'assets', f));
    return { file: `assets/${f}`, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  })
  .sort((a, b) => b.gzip - a.gzip);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
for (const r of rows) {
  const role = entry.includes(r.file) ? 'entry (every page)' : 'loaded on demand';
  console.log(`  ${r.file.padEnd(34)} ${kb(r.raw).padStart(9)} raw ${kb(r.gzip).padStart(8)} gzip  ${role}`);
}
const entryGzip = rows.filter((r) => entry.includes(r.file)).reduce((s, r) => s + r.gzip, 0);
const total = rows.reduce((s, r) => s + r.gzip, 0);
console.log(`JavaScript: entry ${kb(entryGzip)} gzip; all chunks ${kb(total)} gzip (budget ${kb(BUDGET)})`);
if (total > BUDGET) {
  console.error(`over the JavaScript budget by ${kb(total - BUDGET)}`);
  process.exit(1);
}
