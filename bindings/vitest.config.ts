import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // The examples import the package by name, as an app would; here that name is the source.
    alias: [
      { find: /^portd\/react$/, replacement: src('react/index.ts') },
      { find: /^portd\/transports\/(node|tauri|browser)$/, replacement: src('transports/$1.ts') },
      { find: /^portd\/vite$/, replacement: src('vite/index.ts') },
      { find: /^portd$/, replacement: src('index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    environment: 'node',
    // Each file spawns its own sidecars; two workers suit the 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    typecheck: {
      enabled: true,
      include: ['test/**/*.test-d.ts'],
      tsconfig: './tsconfig.json',
    },
  },
});
