// The node transport and the client against the real sidecar (.venv, or $PORTD_SIDECAR).
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  InvalidParamsError,
  MethodNotFoundError,
  PortdClient,
  ResponseError,
  UnknownServiceError,
  type LeaseChange,
  type PortEvent,
} from '../src/index.js';
import { Sidecars, isAlive, until } from './support/sidecar.js';

let sidecars: Sidecars;
const clients: PortdClient[] = [];
const servers: Server[] = [];
const sockets: Socket[] = [];

beforeEach(() => {
  sidecars = new Sidecars();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
  for (const c of clients.splice(0)) c.abandon();
  sidecars.cleanup();
});

function client(extra: string[] = [], options = {}): PortdClient {
  const c = new PortdClient(sidecars.factory(extra), options);
  clients.push(c);
  return c;
}

/** A TCP server that accepts and never answers: an HTTP health check on it hangs. */
async function hangingServer(): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count += 1;
    sockets.push(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { port: address.port, connections: () => count };
}

describe('node transport, real sidecar', () => {
  it('sends ready first, then allocates, reports and releases a port', async () => {
    const c = client();
    const ready = await c.ready;
    expect(ready.protocol).toBe(1);
    expect(ready.framing).toBe('ndjson');
    expect(ready.registry).toBe(sidecars.registry);
    expect(ready.owner_pid).toBe(process.pid);
    expect(c.state).toBe('ready');
    expect(c.pid).toBeTypeOf('number');

    const port = await c.allocatePort('vite');
    expect(port).toBeGreaterThan(0);
    expect(await c.allocatePort('vite')).toBe(port); // the same lease again
    expect(c.leases.get('vite')).toBe(port);

    const info = await c.getPortInfo('vite');
    expect(info).toMatchObject({ service: 'vite', port, owner_pid: process.pid, state: 'leased' });
    const stats = await c.getPortStats();
    expect(stats['vite']?.port).toBe(port);
    expect(await c.isPortAvailable(port)).toBe(false); // leased

    expect(await c.releasePort('vite')).toBeNull();
    expect(c.leases.has('vite')).toBe(false);
    await expect(c.getPortInfo('vite')).rejects.toBeInstanceOf(UnknownServiceError);

    const counters = await c.getStats();
    expect(counters.allocations).toBeGreaterThanOrEqual(1);
    expect(counters.releases).toBe(1);
    const config = await c.initPortManager();
    expect(config.port_range).toEqual([1421, 1500]);
  });

  it('queues calls made before ready and sends them after it', async () => {
    const c = client();
    expect(c.state).toBe('connecting');
    const early = [c.allocatePort('early'), c.call('get_stats'), c.checkPortConflicts()] as const;
    expect(c.readyInfo).toBeUndefined();
    const [port, stats, conflicts] = await Promise.all(early);
    expect(port).toBeTypeOf('number');
    expect(stats.allocations).toBe(1);
    expect(conflicts).toEqual([]);
  });

  it('delivers port_event notifications: handle_port_conflict gives PortChanged', async () => {
    const c = client();
    const events: PortEvent[] = [];
    const changes: LeaseChange[] = [];
    c.onEvent((e) => events.push(e));
    c.onLeaseChange((ch) => changes.push(ch));
    const oldPort = await c.allocatePort('vite');
    const newPort = await c.handlePortConflict('vite');
    expect(newPort).not.toBe(oldPort);
    await until(() => events.some((e) => e.type === 'PortChanged'), 'PortChanged');
    const changed = events.find((e) => e.type === 'PortChanged');
    expect(changed).toMatchObject({ type: 'PortChanged', service: 'vite', old_port: oldPort, new_port: newPort });
    expect(changed?.timestamp).toBeTypeOf('number');
    expect(c.leases.get('vite')).toBe(newPort);
    // one move, reported once, whichever of the answer and the event came first
    expect(changes.filter((ch) => ch.oldPort === oldPort && ch.newPort === newPort)).toHaveLength(1);
  });

  it('rejects a bad call with the ResponseError subclass of its code', async () => {
    const c = client();
    const unknown = await c.getPortInfo('nope').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownServiceError);
    expect(unknown).toBeInstanceOf(ResponseError);
    expect(unknown).toMatchObject({ code: -32002, method: 'get_port_info', name: 'UnknownServiceError' });

    const invalid = await c.isPortAvailable(70000).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(InvalidParamsError);
    expect(invalid).toMatchObject({ code: -32602 });
    expect((invalid as InvalidParamsError).data).toEqual([
      expect.objectContaining({ loc: ['port'], type: 'less_than_equal' }),
    ]);

    const missing = await c
      .call('no_such_method' as 'get_stats')
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(MethodNotFoundError);
    expect(missing).toMatchObject({ code: -32601 });

    // the connection is still good
    expect(await c.isPortAvailable(1)).toBeTypeOf('boolean');
  });

  it('times a call out with ConnectionError("timeout") and cancels one with its AbortSignal', async () => {
    const c = client();
    const server = await hangingServer();
    await c.initPortManager({ frontend: { port: server.port, path: '/health' } });

    const slow = c.performHealthCheck({ timeoutMs: 100 });
    await expect(slow).rejects.toBeInstanceOf(ConnectionError);
    await expect(slow).rejects.toMatchObject({ reason: 'timeout' });

    const ctl = new AbortController();
    const aborted = c.performHealthCheck({ signal: ctl.signal });
    ctl.abort(new Error('user gave up'));
    await expect(aborted).rejects.toThrow('user gave up');

    const before = new AbortController();
    before.abort();
    await expect(c.getStats({ signal: before.signal })).rejects.toMatchObject({ name: 'AbortError' });

    // the late answers are dropped quietly and the client carries on
    expect((await c.getStats()).health_checks).toBeGreaterThanOrEqual(0);
  });

  it('fails the call in flight with ConnectionError("closed") when the sidecar is killed (kill -9)', async () => {
    const c = client();
    const server = await hangingServer();
    await c.initPortManager({ frontend: { port: server.port, path: '/health' } });
    const pid = c.pid;
    expect(pid).toBeTypeOf('number');

    const inFlight = c.performHealthCheck({ timeoutMs: 60_000 });
    await until(() => server.connections() > 0, 'the health check to reach the frontend');
    process.kill(pid as number, 'SIGKILL');

    const error = await inFlight.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ reason: 'closed' });
    expect((error as Error).message).toMatch(/killed \(signal SIGKILL\).*perform_health_check/);
    expect(c.state).toBe('disconnected');
    // not supervised: the next call fails at once
    await expect(c.getStats()).rejects.toMatchObject({ reason: 'closed' });
  });

  it('reports a sidecar that cannot be started as ConnectionError("spawn-failed")', async () => {
    const c = new PortdClient(() => {
      throw new Error('nope');
    });
    clients.push(c);
    await expect(c.ready).rejects.toMatchObject({ reason: 'spawn-failed' });

    const { spawnNodeTransport } = await import('../src/transports/node.js');
    const missing = new PortdClient(() => spawnNodeTransport({ command: '/nonexistent/portd' }));
    clients.push(missing);
    const call = missing.getStats();
    await expect(missing.ready).rejects.toMatchObject({ reason: 'spawn-failed' });
    await expect(call).rejects.toMatchObject({ reason: 'spawn-failed' });
    expect(missing.state).toBe('disconnected');
  });

  it('closes gracefully: shutdown, exit 0, leases released', async () => {
    const c = client();
    await c.allocatePort('vite');
    const pid = c.pid as number;
    await c.close();
    expect(c.state).toBe('closed');
    expect(isAlive(pid)).toBe(false);
    await expect(c.getStats()).rejects.toMatchObject({ reason: 'closed' });

    // a new sidecar of the same app (same owner) sees no lease left
    const again = client();
    expect(await again.getPortStats()).toEqual({});
  });
});
