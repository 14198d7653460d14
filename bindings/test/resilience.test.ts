// ConnectionResilienceService against the real sidecar: kill -9, respawn, leases re-taken.
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  ConnectionResilienceService,
  Portd,
  PortdClient,
  PortDiscoveryService,
  type ConnectionStats,
} from '../src/index.js';
import { spawnNodeTransport } from '../src/transports/node.js';
import { Sidecars, isAlive, sidecarCommand, until } from './support/sidecar.js';

let sidecars: Sidecars;
const stops: (() => unknown)[] = [];
const servers: Server[] = [];

beforeEach(() => {
  sidecars = new Sidecars();
});

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  for (const s of servers.splice(0)) s.close();
  sidecars.cleanup();
});

const FAST = { initialDelay: 20, maxDelay: 200, jitter: false } as const;

describe('ConnectionResilienceService, real sidecar', () => {
  it('respawns a killed sidecar; a call made meanwhile waits for ready and succeeds; leases are re-taken', async () => {
    const factory = sidecars.factory();
    const client = new PortdClient(factory);
    const resilience = new ConnectionResilienceService(client, FAST, { checkInterval: 0 });
    stops.push(() => resilience.stopMonitoring(), () => client.abandon());
    await resilience.startMonitoring();
    expect(resilience.getConnectionStats()).toMatchObject({ state: 'connected', isConnected: true, isMonitoring: true });

    const port = await client.allocatePort('vite');
    const firstPid = client.pid as number;
    const states: ConnectionStats['state'][] = [];
    resilience.addListener((s) => states.push(s.state));

    // A call made the moment the death is noticed: it waits (bounded) for the new sidecar.
    let meanwhile: Promise<{ port: number }> | undefined;
    const clientStates: string[] = [];
    client.onStateChange((state) => {
      clientStates.push(state);
      if (state === 'reconnecting' && !meanwhile) {
        meanwhile = client.getPortInfo('vite', { timeoutMs: 20_000 });
      }
    });

    process.kill(firstPid, 'SIGKILL');
    await until(() => meanwhile !== undefined, 'the client to notice the death');
    const info = await (meanwhile as Promise<{ port: number }>);
    expect(clientStates.slice(0, 3)).toEqual(['reconnecting', 'connecting', 'ready']);
    expect(info.port).toBe(port); // the lease stayed with the app (SIGKILL) and was found again
    expect(client.pid).not.toBe(firstPid);
    expect(isAlive(firstPid)).toBe(false);
    expect(factory.spawned).toHaveLength(2);

    await until(() => resilience.getConnectionStats().reconnections === 1, 'stats');
    const stats = resilience.getConnectionStats();
    expect(stats).toMatchObject({ state: 'connected', disconnections: 1, reconnections: 1, failedAttempts: 0 });
    expect(stats.pid).toBe(client.pid);
    expect(states).toContain('reconnecting');
    expect(await resilience.checkConnection()).toBe(true);
    expect(await client.allocatePort('vite')).toBe(port);
  });

  it('fires onPortChange when a re-taken lease had to move', async () => {
    // The respawned sidecar finds a fresh registry (the old lease is gone) and a squatter on the
    // old port, so the re-allocation lands elsewhere.
    let spawns = 0;
    const factory = () => {
      spawns += 1;
      const registry = join(sidecars.dir, `registry-${spawns}.sqlite3`);
      const { command, args } = sidecarCommand(registry);
      const t = spawnNodeTransport({ command, args });
      sidecars.track(t.pid);
      return t;
    };
    const portd = new Portd({ transport: factory, serviceName: 'vite', reconnection: FAST, resilience: { checkInterval: 0 } });
    stops.push(() => portd.resilience.stopMonitoring(), () => portd.client.abandon());
    const fromDiscovery: [number, number, string][] = [];
    const fromResilience: [number, number, string][] = [];
    portd.portDiscovery.onPortChange((n, o, s) => fromDiscovery.push([n, o, s]));
    portd.resilience.onPortChange((n, o, s) => fromResilience.push([n, o, s]));
    await portd.start();
    const oldPort = portd.portDiscovery.getCurrentPort();
    expect(oldPort).toBeTypeOf('number');

    const squatter = createServer();
    servers.push(squatter);
    await new Promise<void>((resolve) => squatter.listen(oldPort as number, resolve));

    process.kill(portd.client.pid as number, 'SIGKILL');
    await until(() => fromResilience.length > 0, 'the lease to be re-taken');
    const [[newPort, was, service]] = fromResilience as [[number, number, string]];
    expect(was).toBe(oldPort);
    expect(newPort).not.toBe(oldPort);
    expect(service).toBe('vite');
    expect(fromDiscovery).toContainEqual([newPort, oldPort, 'vite']);
    expect(portd.portDiscovery.getCurrentPort()).toBe(newPort);
  });

  it('forceReconnect replaces a live sidecar', async () => {
    const client = new PortdClient(sidecars.factory());
    const resilience = new ConnectionResilienceService(client, FAST, { checkInterval: 0 });
    stops.push(() => client.abandon());
    await client.ready;
    const port = await client.allocatePort('api');
    const pid = client.pid as number;
    await resilience.forceReconnect();
    expect(client.state).toBe('ready');
    expect(client.pid).not.toBe(pid);
    await until(() => !isAlive(pid), 'the old sidecar to be gone');
    expect(await client.getPortInfo('api')).toMatchObject({ port });
    expect(resilience.getConnectionStats().reconnections).toBe(1);
  });

  it('without monitoring, a dead sidecar fails calls at once', async () => {
    const client = new PortdClient(sidecars.factory());
    const resilience = new ConnectionResilienceService(client, FAST, { checkInterval: 0 });
    stops.push(() => client.abandon());
    await client.ready;
    process.kill(client.pid as number, 'SIGKILL');
    await until(() => client.state === 'disconnected', 'disconnected');
    expect(resilience.getConnectionStats().state).toBe('disconnected');
    await expect(client.getStats()).rejects.toBeInstanceOf(ConnectionError);
    expect(await resilience.checkConnection()).toBe(false);
  });

  it('PortDiscoveryService initialises once and tracks the current port', async () => {
    const client = new PortdClient(sidecars.factory());
    stops.push(() => client.close());
    const discovery = new PortDiscoveryService(client, { serviceName: 'frontend', config: { auto_resolve: true } });
    await Promise.all([discovery.initialize(), discovery.initialize()]);
    const snap = discovery.getSnapshot();
    expect(snap.isInitialized).toBe(true);
    expect(snap.config?.auto_resolve).toBe(true);
    expect(snap.currentPort).toBe(await client.allocatePort('frontend'));
    const stats = await discovery.getPortStats();
    expect(Object.keys(stats)).toEqual(['frontend']);
  });
});
