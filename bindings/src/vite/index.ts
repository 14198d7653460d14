/**
 * `portd/vite`: a Vite plugin for the app developer's loop without Tauri. In `vite dev` it spawns
 * the portd sidecar for each page that asks (`portd/transports/browser`) and relays JSON-RPC
 * between the page and the sidecar over Vite's own dev-server WebSocket, so the app's UI runs in
 * a plain browser against a real sidecar.
 *
 * Development only (`apply: 'serve'`): a production build contains none of it. It opens no
 * listener of its own (the sidecar speaks over stdio; the page over Vite's socket), and it ends
 * every sidecar when the page goes or the dev server closes.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Plugin, ViteDevServer } from 'vite';
import { RELAY, isRelayMessage, type RelayExit, type RelayLine, type RelaySpawned } from '../internal/relay.js';
import type { Transport } from '../transport.js';
import { spawnNodeTransport } from '../transports/node.js';

/**
 * Options of the {@link portd} Vite plugin.
 *
 * @example
 * ```ts
 * const options: PortdViteOptions = {
 *   command: '/opt/portd/portd',
 *   args: ['serve', '--app-id', 'my-app'],
 *   onStderr: (line) => console.debug('[portd]', line),
 * };
 * ```
 */
export interface PortdViteOptions {
  /**
   * The sidecar executable. Default: `$PORTD_SIDECAR`, else the nearest `.venv/bin/portd`
   * (`.venv\Scripts\portd.exe` on Windows) from Vite's root upwards, else `portd` on the PATH.
   */
  command?: string;
  /** Its arguments. Default `['serve']` (add `--registry`, `--app-id`, `--parent-pid` as needed). */
  args?: readonly string[];
  /** Working directory of the sidecar. Default: Vite's root. */
  cwd?: string;
  /** Its environment. Default: the dev server's. */
  env?: NodeJS.ProcessEnv;
  /** The sidecar's log lines (stderr). Default: Vite's logger, as info lines. */
  onStderr?: (line: string) => void;
  /** At most this many sidecars at once (one per page that asks). Default 8. */
  maxSidecars?: number;
  /** How long a sidecar may take to exit after its stdin closes before it is killed. Default 2000 ms. */
  closeTimeoutMs?: number;
}

/**
 * What the plugin's `api` offers (for tests and other plugins).
 *
 * @example
 * ```ts
 * const plugin = server.config.plugins.find((p) => p.name === 'portd') as Plugin<PortdViteApi>;
 * console.log(plugin.api?.pids());
 * ```
 */
export interface PortdViteApi {
  /** The pids of the sidecars running now. */
  pids(): number[];
  /** End every sidecar (stdin closed, then killed after `closeTimeoutMs`). */
  stopAll(): Promise<void>;
}

/** One sidecar, spawned for one session of one page. */
interface Sidecar {
  readonly transport: Transport;
  readonly client: unknown;
  readonly exited: Promise<void>;
}

/** How the dev server answers one page: Vite's `NormalizedHotChannelClient`. */
interface PageClient {
  send(event: string, payload?: unknown): void;
}

/**
 * The sidecar command the plugin uses by default (see {@link PortdViteOptions.command}).
 *
 * @example
 * ```ts
 * defaultSidecarCommand('/home/me/app'); // '/home/me/app/.venv/bin/portd' when that exists
 * ```
 */
export function defaultSidecarCommand(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['PORTD_SIDECAR'];
  if (fromEnv) return fromEnv;
  const venvBin = process.platform === 'win32' ? join('.venv', 'Scripts', 'portd.exe') : join('.venv', 'bin', 'portd');
  for (let dir = resolve(root); ; dir = dirname(dir)) {
    const candidate = join(dir, venvBin);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return 'portd';
  }
}

/**
 * The Vite plugin: `vite dev` spawns the portd sidecar for each page using
 * `portd/transports/browser`, and relays its JSON-RPC over the dev server's WebSocket. Nothing in
 * `vite build`.
 *
 * @example
 * ```ts
 * // vite.config.ts
 * import { defineConfig } from 'vite';
 * import { portd } from 'portd/vite';
 *
 * export default defineConfig({
 *   plugins: [portd({ args: ['serve', '--app-id', 'my-app'] })],
 * });
 * ```
 */
export function portd(options: PortdViteOptions = {}): Plugin<PortdViteApi> {
  const sidecars = new Map<string, Sidecar>();
  const maxSidecars = options.maxSidecars ?? 8;
  const closeTimeoutMs = options.closeTimeoutMs ?? 2000;
  let root = process.cwd();
  let log: (line: string) => void = (line) => console.error(`[portd] ${line}`);

  // Sessions are named by the page; a page reaches only its own (Vite keeps one client object
  // per socket).
  const clientIds = new WeakMap<object, number>();
  let lastClientId = 0;
  const key = (client: unknown, session: string): string => {
    let id = clientIds.get(client as object);
    if (id === undefined) {
      id = ++lastClientId;
      clientIds.set(client as object, id);
    }
    return `${id}/${session}`;
  };
  let exitHook = false;

  function start(client: PageClient, session: string): void {
    const k = key(client, session);
    if (sidecars.has(k)) return;
    const reply = (event: string, payload: unknown) => {
      try {
        client.send(event, payload);
      } catch {
        // the page is gone; its sidecar is being stopped
      }
    };
    if (sidecars.size >= maxSidecars) {
      const exit: RelayExit = {
        session,
        reason: 'spawn-failed',
        code: null,
        signal: null,
        error: `portd/vite: already ${maxSidecars} sidecars running (maxSidecars)`,
      };
      reply(RELAY.exit, exit);
      return;
    }
    const transport = spawnNodeTransport({
      command: options.command ?? defaultSidecarCommand(root, options.env ?? process.env),
      args: options.args ?? ['serve'],
      cwd: options.cwd ?? root,
      env: options.env ?? process.env,
      onStderr: options.onStderr ?? log,
    });
    const exited = new Promise<void>((done) => {
      transport.onClose((info) => {
        sidecars.delete(k);
        const exit: RelayExit = {
          session,
          reason: info.reason,
          code: info.code,
          signal: info.signal,
          ...(info.error ? { error: info.error.message } : {}),
        };
        reply(RELAY.exit, exit);
        done();
      });
    });
    sidecars.set(k, { transport, client, exited });
    const pid = transport.pid;
    if (pid !== undefined) {
      const spawned: RelaySpawned = { session, pid };
      reply(RELAY.spawned, spawned);
    }
    transport.onLine((line) => {
      const message: RelayLine = { session, line };
      reply(RELAY.line, message);
    });
  }

  async function stop(sidecar: Sidecar): Promise<void> {
    try {
      await sidecar.transport.close();
    } catch {
      // its stdin is gone already
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), closeTimeoutMs);
    });
    const late = await Promise.race([sidecar.exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      await sidecar.transport.kill();
      await sidecar.exited;
    }
  }

  async function stopAll(): Promise<void> {
    await Promise.all([...sidecars.values()].map(stop));
  }

  function killAllNow(): void {
    for (const s of sidecars.values()) void s.transport.kill();
  }

  function find(client: unknown, data: unknown): Sidecar | undefined {
    return isRelayMessage(data) ? sidecars.get(key(client, data.session)) : undefined;
  }

  return {
    name: 'portd',
    apply: 'serve',
    api: {
      pids: () => [...sidecars.values()].flatMap((s) => (s.transport.pid !== undefined ? [s.transport.pid] : [])),
      stopAll,
    },
    config() {
      // The browser transport uses `import.meta.hot`, which Vite gives only to modules it serves
      // itself, not to pre-bundled dependencies.
      return { optimizeDeps: { exclude: ['portd'] } };
    },
    configResolved(config) {
      root = config.root;
      const logger = config.logger;
      // The sidecar's lines already start with `portd[pid]`.
      log = (line) => logger.info(line.startsWith('portd') ? line : `[portd] ${line}`, { timestamp: true });
    },
    configureServer(server: ViteDevServer) {
      const ws = server.ws;
      ws.on(RELAY.spawn, (data: unknown, client: PageClient) => {
        if (isRelayMessage(data)) start(client, data.session);
      });
      ws.on(RELAY.send, (data: unknown, client: PageClient) => {
        const line = (data as Partial<RelayLine> | null)?.line;
        const sidecar = find(client, data);
        if (sidecar && typeof line === 'string') {
          void Promise.resolve(sidecar.transport.send(line)).catch(() => undefined);
        }
      });
      ws.on(RELAY.close, (data: unknown, client: PageClient) => {
        const sidecar = find(client, data);
        if (sidecar) void stop(sidecar);
      });
      ws.on(RELAY.kill, (data: unknown, client: PageClient) => {
        void find(client, data)?.transport.kill();
      });
      ws.on('vite:client:disconnect', (_data: unknown, client: PageClient) => {
        for (const s of [...sidecars.values()]) if (s.client === client) void stop(s);
      });
      server.httpServer?.once('close', () => void stopAll());
      if (!exitHook) {
        // A dev server that exits without closing: its sidecars would see their parent gone
        // within a second anyway; kill them now.
        exitHook = true;
        process.once('exit', killAllNow);
      }
    },
    async closeBundle() {
      // Vite runs this when the dev server closes.
      await stopAll();
      if (exitHook) {
        exitHook = false;
        process.off('exit', killAllNow);
      }
    },
  };
}

export default portd;
