// The storefront build. Output goes to web/dist, which is committed: the server embeds it at
// compile time, and CI rebuilds it and fails when the committed copy is stale, so the build must
// be deterministic (content-hashed names, no source maps, no timestamps).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: 'storefront',
  base: '/',
  resolve: { alias: { '@coursepay/client': fileURLToPath(new URL('./client/src/index.ts', import.meta.url)) } },
  envDir: '..',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  // `npm run dev`: the storefront with hot reload on :5173, the API from a running `coursepay serve`.
  server: {
    port: 5173,
    proxy: { '/v1': 'http://127.0.0.1:8080', '/toss-sandbox': 'http://127.0.0.1:8080' },
  },
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  test: {
    root: '.',
    include: ['client/test/**/*.test.ts', 'storefront/test/**/*.test.ts', 'storefront/test/**/*.test.tsx'],
    environment: 'node',
  },
});
