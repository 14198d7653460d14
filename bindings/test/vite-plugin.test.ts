// The portd/vite plugin and the browser transport, without a browser: a PortdClient over
// browserTransport() whose `import.meta.hot` is a stand-in wired to the plugin's handlers (as
// Vite's WebSocket would be), against the real sidecar.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortdClient } from '../src/index.js';
import { browserTransport, spawnBrowserTransport, type HotChannel } from '../src/transports/browser.js';
import { defaultSidecarCommand, portd, type PortdViteApi } from '../src/vite/index.js';
import type { Plugin, ViteDevServer } from 'vite';
import { Sidecars, isAlive, sidecarCommand, until } from './support/sidecar.js';

type Handler = (data: unknown, client: unknown) => void;

/** Vite's `server.ws` as far as the plugin uses it, and pages connected to it. */
class FakeWs {
  readonly handlers = new Map<string, Set<Handler>>();
  on(event: string, fn: Handler): void {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)?.add(fn);
  }
  emit(event: string, data: unknown, client: unknown): void {
    for (const fn of this.handlers.get(event) ?? []) fn(data, client);
  }
  /** A page: its `import.meta.hot`, and a way to drop its socket. */
  page(): { hot: HotChannel; disconnect: () => void; received: string[]; sessions: string[] } {
    const listeners = new Map<string, Set<(data: unknown) => void>>();
    const received: string[] = [];
    const sessions: string[] = [];
    const deliver = (event: string, data: unknown) => {
      received.push(event);
      for (const fn of listeners.get(event) ?? []) fn(data);
    };
    // The dev server's client object for this page (one per socket, as Vite keeps it).
    const client = { send: (event: string, payload: unknown) => setImmediate(() => deliver(event, payload)) };
    const hot: HotChannel = {
      send: (event, data) => {
        if (event === 'portd:spawn') sessions.push((data as { session: string }).session);
        setImmediate(() => this.emit(event, JSON.parse(JSON.stringify(data ?? null)), client));
      },
      on: (event, fn) => {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event)?.add(fn);
      },
      off: (event, fn) => listeners.get(event)?.delete(fn),
    };
    const disconnect = () => {
      this.emit('vite:client:disconnect', undefined, client);
      deliver('vite:ws:disconnect', undefined);
    };
    return { hot, disconnect, received, sessions };
  }
}

let sidecars: Sidecars;
let ws: FakeWs;
let plugin: Plugin<PortdViteApi>;
const clients: PortdClient[] = [];

function start(options: Parameters<typeof portd>[0] = {}): void {
  const { command, args } = sidecarCommand(sidecars.registry);
  plugin = portd({ command, args, onStderr: (line) => sidecars.stderr.push(line), ...options });
  const server = { ws, httpServer: null } as unknown as ViteDevServer;
  (plugin.configureServer as (s: ViteDevServer) => void)(server);
}

beforeEach(() => {
  sidecars = new Sidecars();
  ws = new FakeWs();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.abandon();
  for (const pid of plugin.api?.pids() ?? []) sidecars.track(pid);
  await plugin.api?.stopAll();
  sidecars.cleanup();
});

describe('portd/vite', () => {
  it('is dev-only and keeps portd out of pre-bundling', () => {
    plugin = portd();
    expect(plugin.name).toBe('portd');
    expect(plugin.apply).toBe('serve');
    const config = (plugin.config as () => { optimizeDeps: { exclude: string[] } })();
    expect(config.optimizeDeps.exclude).toContain('portd');
  });

  it('relays a PortdClient to a real sidecar: ready, calls, events, close', async () => {
    start();
    const page = ws.page();
    const client = new PortdClient(browserTransport({ hot: page.hot }));
    clients.push(client);
    const ready = await client.ready;
    expect(ready.protocol).toBe(1);
    expect(plugin.api?.pids()).toEqual([ready.pid]);
    expect(client.pid).toBe(ready.pid);

    const port = await client.allocatePort('web');
    expect(await client.getPortInfo('web')).toMatchObject({ service: 'web', port });
    const events: string[] = [];
    client.onEvent((e) => events.push(e.type));
    const moved = await client.handlePortConflict('web');
    expect(moved).not.toBe(port);
    await until(() => events.includes('PortChanged'), 'the PortChanged event');

    await client.close(); // shutdown, then the sidecar exits 0
    await until(() => !isAlive(ready.pid), 'the sidecar to exit');
    expect(plugin.api?.pids()).toEqual([]);
    expect(page.received).toContain('portd:exit');
  });

  it('keeps pages apart, and ends a page\'s sidecar when its socket drops', async () => {
    start();
    const a = ws.page();
    const b = ws.page();
    const ta = await spawnBrowserTransport({ hot: a.hot });
    const tb = await spawnBrowserTransport({ hot: b.hot });
    const lines: string[] = [];
    ta.onLine((line) => lines.push(line));
    await until(() => lines.length > 0, 'ready');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ method: 'ready' });
    expect(ta.pid).not.toBe(tb.pid);

    // Page b names page a's session, then its own: only its own sidecar dies (messages are
    // handled in order, so a's would be gone by then too if the plugin had obeyed).
    b.hot.send('portd:kill', { session: a.sessions[0] });
    b.hot.send('portd:kill', { session: b.sessions[0] });
    await until(() => !isAlive(tb.pid as number), "page b's sidecar to end");
    expect(isAlive(ta.pid as number)).toBe(true);

    let closed = false;
    ta.onClose(() => {
      closed = true;
    });
    a.disconnect();
    await until(() => closed && !isAlive(ta.pid as number), "page a's sidecar to end");
    expect(plugin.api?.pids()).toEqual([]);
  });

  it('reports a sidecar that cannot start, and a dev server without the plugin', async () => {
    start({ command: '/nonexistent/portd' });
    const page = ws.page();
    const t = await spawnBrowserTransport({ hot: page.hot });
    const info = await new Promise((resolve) => t.onClose(resolve));
    expect(info).toMatchObject({ reason: 'spawn-failed' });

    const lonely = new FakeWs().page(); // nothing answers portd:spawn
    const t2 = await spawnBrowserTransport({ hot: lonely.hot, spawnTimeoutMs: 200 });
    const info2 = await new Promise((resolve) => t2.onClose(resolve));
    expect(info2).toMatchObject({ reason: 'spawn-failed' });
    expect(String((info2 as { error?: Error }).error)).toMatch(/portd\(\) from 'portd\/vite'/);

    await expect(spawnBrowserTransport()).rejects.toThrow(/import\.meta\.hot is undefined/);
  });

  it('finds the project\'s .venv, else $PORTD_SIDECAR or portd on the PATH', () => {
    expect(defaultSidecarCommand(process.cwd(), {})).toMatch(/\.venv[\\/]bin[\\/]portd$|^portd$/);
    expect(defaultSidecarCommand('/', { PORTD_SIDECAR: '/opt/portd' })).toBe('/opt/portd');
    expect(defaultSidecarCommand('/', {})).toBe('portd');
  });
});
