// The dashboard example: `npm run dashboard` (or `./scripts/demo --dashboard` from the project
// root) serves this page with `vite dev`; the portd plugin spawns a real sidecar for it.
import { fileURLToPath } from 'node:url';
import { defineConfig, type UserConfig } from 'vite';
// An app writes `import { portd } from 'portd/vite'`; here the package is this source tree.
import { portd, type PortdViteOptions } from '../../src/vite/index.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const src = (path: string) => here(`../../src/${path}`);

/**
 * The example's Vite config, with the sidecar's command line as a parameter (the browser test
 * gives it a temporary registry and a stand-in app as the leases' owner).
 */
export function dashboardConfig(sidecar: PortdViteOptions = {}): UserConfig {
  return {
    root: here('.'),
    plugins: [portd(sidecar)],
    resolve: {
      // The page imports the package by name, as an app would; here that name is the source.
      alias: [
        { find: /^portd\/react\/styles\.css$/, replacement: src('react/styles.css') },
        { find: /^portd\/react$/, replacement: src('react/index.ts') },
        { find: /^portd\/transports\/(node|tauri|browser)$/, replacement: src('transports/$1.ts') },
        { find: /^portd$/, replacement: src('index.ts') },
      ],
    },
    oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
    // Pre-bundle these up front, so that the first load does not reload when Vite finds them.
    optimizeDeps: { include: ['react', 'react-dom/client', 'react/jsx-dev-runtime', '@tauri-apps/plugin-shell'] },
    server: { host: '127.0.0.1', port: 5199 },
    clearScreen: false,
  };
}

export default defineConfig(dashboardConfig());
