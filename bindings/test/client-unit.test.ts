// PortdClient edge cases that a real sidecar does not produce on demand (in-process stand-in).
import { describe, expect, it, vi } from 'vitest';
import { ConnectionError, PortdClient, ResponseError, ShuttingDownError, TransportHub } from '../src/index.js';
import { FakeSidecar, HANG } from './support/fake.js';

describe('PortdClient (in-process sidecar)', () => {
  it('without a transport: calls fail at once and say how to configure one', async () => {
    const client = new PortdClient();
    expect(client.state).toBe('idle');
    await expect(client.getStats()).rejects.toThrow(/configurePortd/);
    await expect(client.connect()).rejects.toMatchObject({ reason: 'spawn-failed' });
    await client.close();
    expect(client.state).toBe('closed');
  });

  it('reports stray lines to onProtocolError and carries on', async () => {
    const onProtocolError = vi.fn();
    const fake = new FakeSidecar();
    const client = new PortdClient(() => fake, { onProtocolError });
    await client.ready;
    fake.hub.line('not json');
    fake.hub.line('{"jsonrpc":"2.0","id":999,"result":1}');
    fake.hub.line('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
    fake.hub.line('[]');
    expect(onProtocolError).toHaveBeenCalledTimes(3);
    expect(String(onProtocolError.mock.calls[2]?.[0])).toMatch(/-32700/);
    expect(await client.allocatePort('x')).toBe(1421);
  });

  it('maps unknown error codes to a plain ResponseError and known ones to their class', async () => {
    const fake = new FakeSidecar({ handler: () => HANG });
    const client = new PortdClient(() => fake);
    await client.ready;
    const a = client.getStats();
    const b = client.getStats();
    const [ida, idb] = fake.sent.map((m) => m.id);
    fake.hub.line(JSON.stringify({ jsonrpc: '2.0', id: ida, error: { code: -32099, message: 'custom', data: { x: 1 } } }));
    fake.hub.line(JSON.stringify({ jsonrpc: '2.0', id: idb, error: { code: -32006, message: 'shutting down' } }));
    const ea = await a.catch((e: unknown) => e);
    expect(ea).toBeInstanceOf(ResponseError);
    expect(ea?.constructor).toBe(ResponseError);
    expect(ea).toMatchObject({ code: -32099, data: { x: 1 }, method: 'get_stats' });
    await expect(b).rejects.toBeInstanceOf(ShuttingDownError);
  });

  it('connect() replaces a running sidecar: its calls in flight fail, queued ones go to the new one', async () => {
    const first = new FakeSidecar({ handler: () => HANG });
    const second = new FakeSidecar();
    const sidecars = [first, second];
    const client = new PortdClient(() => sidecars.shift() as FakeSidecar);
    await client.ready;
    const inFlight = client.getStats();
    const reconnect = client.connect();
    const queued = client.allocatePort('y', 2000);
    await expect(inFlight).rejects.toBeInstanceOf(ConnectionError);
    expect(first.alive).toBe(false);
    await reconnect;
    await expect(queued).resolves.toBe(2000);
  });

  it('tracks leases from answers and PortChanged events (only its own services)', async () => {
    const fake = new FakeSidecar();
    const client = new PortdClient(() => fake);
    const changes: unknown[] = [];
    client.onLeaseChange((c) => changes.push(c));
    await client.allocatePort('vite', 1430);
    const event = (service: string, old_port: number, new_port: number) =>
      fake.hub.line(JSON.stringify({ jsonrpc: '2.0', method: 'port_event', params: { type: 'PortChanged', service, old_port, new_port, timestamp: 1 } }));
    event('vite', 1430, 1431);
    event('someone-else', 1, 2);
    await client.releasePort('vite');
    expect(changes).toEqual([
      { service: 'vite', oldPort: undefined, newPort: 1430, cause: 'allocate' },
      { service: 'vite', oldPort: 1430, newPort: 1431, cause: 'event' },
      { service: 'vite', oldPort: 1431, newPort: undefined, cause: 'release' },
    ]);
    expect(client.leases.size).toBe(0);
  });

  it('a transport whose lines come before anyone listens loses none', async () => {
    const hub = new TransportHub();
    hub.line(JSON.stringify({ jsonrpc: '2.0', method: 'ready', params: { version: 'v', protocol: 1, pid: 7, framing: 'ndjson', registry: 'r', owner_pid: 1, app_id: 'a' } }));
    const client = new PortdClient({ pid: 7, send: () => undefined, onLine: hub.onLine, onClose: hub.onClose, close: () => undefined, kill: () => undefined });
    expect((await client.ready).pid).toBe(7);
    // a single transport cannot be respawned
    await expect(client.connect()).rejects.toMatchObject({ reason: 'spawn-failed' });
  });
});
