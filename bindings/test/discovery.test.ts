// Service discovery through the client, against real sidecars of two apps on one registry: one
// finds the other's service by name, and is told when it moves and when it goes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortdClient, UnknownServiceError, type PortEvent } from '../src/index.js';
import { Sidecars, until } from './support/sidecar.js';

let sidecars: Sidecars;
const clients: PortdClient[] = [];

beforeEach(() => {
  sidecars = new Sidecars();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.abandon();
  sidecars.cleanup();
});

/** A sidecar of the app `appId`, looking at what it watches every 0.2 s. */
async function app(appId: string): Promise<PortdClient> {
  const c = new PortdClient(sidecars.factory(['--app-id', appId]));
  clients.push(c);
  await c.initPortManager({ conflict_scan_interval: 0.2 });
  return c;
}

describe('service discovery, real sidecars', () => {
  it('resolves another app’s service by name, and rejects one nobody holds with UnknownServiceError', async () => {
    const [chat, mail] = await Promise.all([app('chat'), app('mail')]);
    const port = await chat.allocatePort('api');

    const [api, ...others] = await mail.resolveService('chat', 'api');
    expect(others).toEqual([]);
    expect(api).toMatchObject({ app_id: 'chat', service: 'api', port, address: '127.0.0.1', local: true, state: 'live' });
    expect(api?.pid).toBe(process.pid); // the owner of chat's leases: this test process

    const unknown = await mail.resolveService('chat', 'nope').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownServiceError);
    expect(unknown).toMatchObject({ code: -32002, method: 'resolve_service' });
  });

  it('watchService answers where it is now, then ServiceMoved and ServiceDown arrive as port_events', async () => {
    const [chat, mail] = await Promise.all([app('chat'), app('mail')]);
    const events: PortEvent[] = [];
    mail.onEvent((e) => events.push(e));
    const port = await chat.allocatePort('api');

    const [now] = await mail.watchService('chat', 'api');
    expect(now?.port).toBe(port);

    const moved = await chat.handlePortConflict('api');
    await until(() => events.some((e) => e.type === 'ServiceMoved'), 'ServiceMoved');
    expect(events.find((e) => e.type === 'ServiceMoved')).toMatchObject({
      app_id: 'chat',
      service: 'api',
      old_port: port,
      new_port: moved,
      address: '127.0.0.1',
    });

    await chat.releasePort('api');
    await until(() => events.some((e) => e.type === 'ServiceDown'), 'ServiceDown');
    expect(events.find((e) => e.type === 'ServiceDown')).toMatchObject({ service: 'api', port: moved });

    expect(await mail.unwatchService('chat', 'api')).toBeNull();
    expect(await mail.watchService('chat', 'api')).toEqual([]); // not up: nothing, no error
  });
});
