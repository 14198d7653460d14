/**
 * The browser transport: a page served by `vite dev` talks to a real sidecar that the
 * `portd/vite` plugin spawns in the dev server, over Vite's own dev-server WebSocket
 * (`import.meta.hot`). So the UI of a Tauri or Electron app can be worked on in a plain browser.
 * Development only: in a production build `import.meta.hot` is `undefined`, and a page that picks
 * its transport with `import.meta.hot ? browserTransport() : tauriTransport()` carries none of it.
 *
 * @module
 */
import { RELAY, isRelayMessage, type RelayExit, type RelayLine, type RelaySpawned } from '../internal/relay.js';
import { TransportHub, type Transport, type TransportFactory } from '../transport.js';

/**
 * What the transport needs of Vite's `import.meta.hot` (Vite's `ViteHotContext` fits).
 *
 * @example
 * ```ts
 * const hot: HotChannel | undefined = import.meta.hot;
 * ```
 */
export interface HotChannel {
  /** Send a custom event to the dev server. */
  send(event: string, data?: unknown): void;
  /** Listen to a custom event from the dev server. */
  on(event: string, listener: (data: unknown) => void): void;
  /** Stop listening (Vite ≥ 5). */
  off?(event: string, listener: (data: unknown) => void): void;
}

/**
 * Options of {@link browserTransport}.
 *
 * @example
 * ```ts
 * const options: BrowserTransportOptions = { hot: import.meta.hot, spawnTimeoutMs: 5000 };
 * ```
 */
export interface BrowserTransportOptions {
  /**
   * The page's `import.meta.hot`. Default: this module's own, which Vite provides when it serves
   * the module itself (the `portd/vite` plugin keeps `portd` out of dependency pre-bundling for
   * that); pass the app's `import.meta.hot` if your set-up bundles `portd` anyway.
   */
  hot?: HotChannel;
  /** How long to wait for the dev server to start the sidecar. Default 10 000 ms. */
  spawnTimeoutMs?: number;
}

interface ImportMetaWithHot {
  readonly hot?: HotChannel;
}

/**
 * Whether this page is served by `vite dev` (it has `import.meta.hot`), so that
 * {@link browserTransport} can work.
 *
 * @example
 * ```ts
 * if (!hasViteDevServer()) console.warn('portd: no Vite dev server here');
 * ```
 */
export function hasViteDevServer(): boolean {
  return (import.meta as unknown as ImportMetaWithHot).hot !== undefined;
}

function sessionId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Ask the dev server for a sidecar; resolves with its transport once it runs (or with a transport
 * already closed as `spawn-failed` when it could not start). Rejects when there is no dev server.
 *
 * Lines go to the sidecar as `portd:send` events and come back as `portd:line`; `close()` ends its
 * stdin, `kill()` kills it. When the page's WebSocket drops, the plugin kills the sidecar and this
 * transport reports it gone (reason `error`), so a monitoring client respawns through the factory.
 *
 * @example
 * ```ts
 * const transport = await spawnBrowserTransport({ hot: import.meta.hot });
 * transport.onLine((line) => console.log(line)); // {"jsonrpc":"2.0","method":"ready",…}
 * ```
 */
export async function spawnBrowserTransport(options: BrowserTransportOptions = {}): Promise<Transport> {
  const hot = options.hot ?? (import.meta as unknown as ImportMetaWithHot).hot;
  if (!hot) {
    throw new Error(
      'portd: the browser transport needs a page served by `vite dev` with the portd/vite plugin (import.meta.hot is undefined)',
    );
  }
  const session = sessionId();
  const hub = new TransportHub();
  let pid: number | undefined;
  let started!: () => void;
  const spawned = new Promise<void>((resolve) => {
    started = resolve;
  });

  const listeners: [string, (data: unknown) => void][] = [];
  const listen = (event: string, fn: (data: unknown) => void) => {
    hot.on(event, fn);
    listeners.push([event, fn]);
  };
  const detach = () => {
    for (const [event, fn] of listeners.splice(0)) hot.off?.(event, fn);
  };
  const gone = (info: Parameters<TransportHub['close']>[0]) => {
    if (hub.closed) return;
    detach();
    clearTimeout(timer);
    if (hub.splitter.pending !== '') hub.splitter.flush();
    hub.close(info);
    started();
  };
  const mine = (data: unknown): boolean => isRelayMessage(data) && data.session === session;

  listen(RELAY.spawned, (data) => {
    if (!mine(data)) return;
    pid = (data as RelaySpawned).pid;
    clearTimeout(timer);
    started();
  });
  listen(RELAY.line, (data) => {
    if (mine(data) && !hub.closed) hub.line((data as RelayLine).line);
  });
  listen(RELAY.exit, (data) => {
    if (!mine(data)) return;
    const exit = data as RelayExit;
    gone({
      reason: exit.reason,
      code: exit.code,
      signal: exit.signal,
      ...(exit.error !== undefined ? { error: new Error(exit.error) } : {}),
    });
  });
  listen('vite:ws:disconnect', () => {
    gone({ reason: 'error', code: null, signal: null, error: new Error('portd: lost the Vite dev server') });
  });

  const timeoutMs = options.spawnTimeoutMs ?? 10_000;
  const timer = setTimeout(() => {
    gone({
      reason: 'spawn-failed',
      code: null,
      signal: null,
      error: new Error(
        `portd: the Vite dev server did not start a sidecar within ${timeoutMs} ms — is portd() from 'portd/vite' in vite.config plugins?`,
      ),
    });
  }, timeoutMs);

  hot.send(RELAY.spawn, { session });
  await spawned;

  const request = (event: string) => {
    if (!hub.closed) hot.send(event, { session });
  };
  return {
    get pid() {
      return pid;
    },
    send(line: string): void {
      if (hub.closed) throw new Error('portd: the sidecar is gone');
      hot.send(RELAY.send, { session, line });
    },
    onLine: hub.onLine,
    onClose: hub.onClose,
    close: () => request(RELAY.close),
    kill: () => request(RELAY.kill),
  };
}

/**
 * A {@link TransportFactory} for a page served by `vite dev` with the `portd/vite` plugin: each
 * call asks the dev server for a fresh sidecar. In production builds `import.meta.hot` is
 * `undefined`; choose the transport with it so that none of this is bundled.
 *
 * @example
 * ```ts
 * import { configurePortd } from 'portd';
 * import { browserTransport } from 'portd/transports/browser';
 * import { tauriTransport } from 'portd/transports/tauri';
 *
 * configurePortd({ transport: import.meta.hot ? browserTransport() : tauriTransport() });
 * ```
 */
export function browserTransport(options: BrowserTransportOptions = {}): TransportFactory {
  return () => spawnBrowserTransport(options);
}
