// @vitest-environment jsdom
// Hooks and components with @testing-library/react against a real sidecar.
import { act, cleanup, fireEvent, render, renderHook, screen, waitFor } from '@testing-library/react';
import { createServer, type Server } from 'node:net';
import type { ReactNode } from 'react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Portd } from '../src/index.js';
import { spawn } from 'node:child_process';
import {
  ConnectionStatus,
  EventLog,
  HealthCheck,
  HealthLatencyChart,
  PortDiscoveryProvider,
  PortTable,
  describePortEvent,
  usePortDiscovery,
  usePortDiscoveryContext,
} from '../src/react/index.js';
import { Sidecars, isAlive, until } from './support/sidecar.js';

let sidecars: Sidecars;
let portd: Portd;
const servers: Server[] = [];
const WAIT = { timeout: 15_000 };

function makePortd(options: { parentPid?: number; config?: Record<string, unknown> } = {}): Portd {
  return new Portd({
    transport: sidecars.factory([], options.parentPid),
    reconnection: { initialDelay: 20, jitter: false },
    resilience: { checkInterval: 0 },
    ...(options.config ? { config: options.config } : {}),
  });
}

beforeEach(() => {
  sidecars = new Sidecars();
  portd = makePortd();
});

afterEach(async () => {
  cleanup();
  for (const s of servers.splice(0)) s.close();
  portd.healthCheck.stopHealthCheck();
  portd.resilience.stopMonitoring();
  portd.client.abandon();
  sidecars.cleanup();
});

function wrapper({ children }: { children?: ReactNode }) {
  return (
    <PortDiscoveryProvider portd={portd} healthCheckInterval={0}>
      {children}
    </PortDiscoveryProvider>
  );
}

/** A range of ports of this test's own, clear of the 1421-1500 other sidecars here lease from. */
function privateRange(): Record<string, unknown> {
  const low = 20_000 + 200 * Math.floor(Math.random() * 50);
  return { preferred_port: low, port_range: [low, low + 199] };
}

async function squat(port: number): Promise<void> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
}

describe('usePortDiscovery', () => {
  it('initialises, gives currentPort, and fires onPortChange once when handlePortConflict moves it', async () => {
    const onPortChange = vi.fn();
    const { result } = renderHook(() => usePortDiscovery({ autoStart: true, onPortChange }), { wrapper });
    expect(result.current.isInitialized).toBe(false);
    expect(result.current.healthStatus).toBe('unknown');
    await waitFor(() => expect(result.current.isInitialized).toBe(true), WAIT);
    const oldPort = result.current.currentPort;
    expect(oldPort).toBeTypeOf('number');
    expect(result.current.connection.state).toBe('connected');

    let newPort = 0;
    await act(async () => {
      newPort = await result.current.handlePortConflict();
    });
    expect(newPort).not.toBe(oldPort);
    expect(result.current.currentPort).toBe(newPort);
    await waitFor(() => expect(result.current.lastEvent?.type).toBe('PortChanged'), WAIT);
    expect(onPortChange).toHaveBeenCalledTimes(1);
    expect(onPortChange).toHaveBeenCalledWith(newPort, oldPort);

    // autoStart ran one health check
    await waitFor(() => expect(result.current.healthStatus).not.toBe('unknown'), WAIT);
    await act(async () => {
      const status = await result.current.performHealthCheck();
      expect(status.components.map((c) => c.component)).toContain('port_manager');
    });
    expect(result.current.health?.components.length).toBeGreaterThan(0);
  });

  it('follows another service with serviceName, and does nothing without autoStart', async () => {
    const { result } = renderHook(() => usePortDiscovery({ serviceName: 'api' }), { wrapper });
    await waitFor(() => expect(result.current.currentPort).toBeTypeOf('number'), WAIT);
    expect(result.current.ports['api']).toBe(result.current.currentPort);
    expect(result.current.ports['frontend']).toBeTypeOf('number');

    const idle = makePortd();
    const { result: idleResult } = renderHook(() => usePortDiscovery({ autoStart: false, portd: idle }));
    await idle.client.ready;
    expect(idleResult.current.isInitialized).toBe(false);
    expect(idle.client.leases.size).toBe(0); // nothing allocated
    expect(idleResult.current.currentPort).toBeNull();
    await act(() => idleResult.current.initialize());
    expect(idleResult.current.isInitialized).toBe(true);
    expect(idleResult.current.currentPort).toBe(result.current.ports['frontend']); // same app, same lease
    idle.client.abandon();
  });

  it('calls onPortConflict when a stranger listens on the port (auto_resolve off)', async () => {
    // The leases' owner is a separate app process, so this test process is a stranger to them.
    portd = makePortd({ parentPid: sidecars.fakeApp(), config: { auto_resolve: false, conflict_scan_interval: 0.2 } });
    const onPortConflict = vi.fn();
    const { result } = renderHook(() => usePortDiscovery({ onPortConflict }), { wrapper });
    await waitFor(() => expect(result.current.currentPort).toBeTypeOf('number'), WAIT);
    const port = result.current.currentPort as number;
    await squat(port);
    await waitFor(() => expect(onPortConflict).toHaveBeenCalledWith(port, 'frontend'), WAIT);
    expect(result.current.lastEvent).toMatchObject({ type: 'PortConflict', service: 'frontend' });
  });
});

describe('PortDiscoveryProvider', () => {
  it('usePortDiscoveryContext throws a clear error outside the provider', () => {
    const spy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(() => renderHook(() => usePortDiscoveryContext())).toThrow(
      /usePortDiscoveryContext\(\) must be used inside a <PortDiscoveryProvider>/,
    );
    spy.mockRestore();
  });

  it('provides its instance: the context hook sees the port the provider allocated', async () => {
    function Port() {
      const { currentPort, isInitialized } = usePortDiscoveryContext();
      return <p>{isInitialized ? `port ${currentPort}` : 'starting'}</p>;
    }
    render(
      <PortDiscoveryProvider portd={portd} healthCheckInterval={0}>
        <Port />
      </PortDiscoveryProvider>,
    );
    expect(screen.getByText('starting')).toBeTruthy();
    const port = await until(() => portd.portDiscovery.getCurrentPort() !== null, 'a port').then(
      () => portd.portDiscovery.getCurrentPort(),
    );
    await screen.findByText(`port ${port}`, {}, WAIT);
  });
});

describe('components', () => {
  it('HealthCheck shows the status, and each component with showDetails', async () => {
    render(
      <PortDiscoveryProvider portd={portd} healthCheckInterval={60_000}>
        <HealthCheck showDetails={true} />
      </PortDiscoveryProvider>,
    );
    const list = await screen.findByRole('list', { name: 'components' }, WAIT);
    for (const component of ['port_manager', 'registry', 'frontend_server', 'app', 'system_resources', 'network']) {
      expect(list.textContent).toContain(component);
    }
    expect(screen.getByText(/Checks: 1, failed:/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Check now' }));
    await screen.findByText(/Checks: 2, failed:/, {}, WAIT);
  });

  it('HealthCheck without showDetails shows no component list', async () => {
    render(<HealthCheck portd={portd} />);
    fireEvent.click(screen.getByRole('button', { name: 'Check now' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toMatch(/Health: (Healthy|Unhealthy)/), WAIT);
    expect(screen.queryByRole('list')).toBeNull();
  });

  it('ConnectionStatus shows the state, the sidecar, and reconnects after a crash', async () => {
    render(
      <PortDiscoveryProvider portd={portd} healthCheckInterval={0}>
        <ConnectionStatus showDetails={true} />
      </PortDiscoveryProvider>,
    );
    await screen.findByText('Connected', {}, WAIT);
    const firstPid = portd.client.pid as number;
    await screen.findByText(new RegExp(`pid ${firstPid}, portd `), {}, WAIT);

    await act(async () => {
      process.kill(firstPid, 'SIGKILL');
      await until(() => portd.resilience.getConnectionStats().reconnections === 1, 'the respawn');
    });
    await screen.findByText('Connected', {}, WAIT);
    const secondPid = portd.client.pid as number;
    expect(secondPid).not.toBe(firstPid);
    await screen.findByText(new RegExp(`pid ${secondPid}, portd `), {}, WAIT);

    fireEvent.click(screen.getByRole('button', { name: 'Reconnect' }));
    await waitFor(() => expect(portd.resilience.getConnectionStats().reconnections).toBe(2), WAIT);
    await screen.findByText('Connected', {}, WAIT);
  });

  it('PortTable, EventLog and HealthLatencyChart follow the leases, a move and the checks', async () => {
    portd = makePortd({ config: privateRange() });
    const { container } = render(
      <PortDiscoveryProvider portd={portd} healthCheckInterval={0}>
        <PortTable refreshInterval={0} />
        <EventLog limit={5} />
        <HealthLatencyChart samples={10} />
      </PortDiscoveryProvider>,
    );
    await portd.portDiscovery.initialize();
    const api = await portd.portDiscovery.allocatePort('api');
    const row = (service: string) => container.querySelector(`.portd-ports__leases tr[data-service="${service}"]`);
    await waitFor(() => expect(row('api')?.getAttribute('data-port')).toBe(String(api)), WAIT);
    expect(row('frontend')?.getAttribute('data-state')).toBe('leased');
    expect(screen.getByText('No events yet.')).toBeTruthy();
    expect(screen.getByText('waiting for the first check…')).toBeTruthy();

    // Move the api from the table: its row shows the new port and where it was; the log says so.
    const moveApi = row('api')?.querySelector('button') as HTMLButtonElement;
    expect(moveApi.textContent).toBe('Move');
    fireEvent.click(moveApi);
    await waitFor(() => expect(row('api')?.getAttribute('data-port')).not.toBe(String(api)), WAIT);
    const moved = Number(row('api')?.getAttribute('data-port'));
    await waitFor(() => expect(row('api')?.textContent).toContain(`was ${api}`), WAIT);
    const item = await screen.findByText(`api moved ${api} → ${moved}`, {}, WAIT);
    expect(item.closest('li')?.getAttribute('data-type')).toBe('PortChanged');

    // Two checks: two points on the chart, and the caption.
    await act(async () => {
      await portd.healthCheck.performHealthCheck();
      await portd.healthCheck.performHealthCheck();
    });
    expect(container.querySelectorAll('.portd-chart__dot')).toHaveLength(2);
    expect(container.querySelector('.portd-chart__line')).not.toBeNull();
    expect(container.querySelector('.portd-chart__caption')?.textContent).toMatch(/min .* ms · avg .* ms · max .* ms/);

    // Release from the table.
    fireEvent.click(row('api')?.querySelectorAll('button')[1] as HTMLButtonElement);
    await waitFor(() => expect(row('api')).toBeNull(), WAIT);
  });

  it('PortTable shows an orphan on a watched port and reclaims it', async () => {
    // Yesterday's dev server: a listener recorded as the lease's holder, whose app is gone and
    // whose sidecar was killed (so nobody released the lease).
    const app = sidecars.fakeApp();
    const old = makePortd({ parentPid: app, config: privateRange() });
    await old.portDiscovery.initialize();
    const port = await old.client.allocatePort('vite');
    const server = spawn(process.execPath, ['-e', `require('net').createServer().listen(${port}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    sidecars.track(server.pid);
    await new Promise((resolve) => server.stdout?.once('data', resolve));
    await old.client.attachProcess('vite', server.pid as number);
    const oldSidecar = old.client.pid as number;
    old.client.abandon();
    process.kill(oldSidecar, 'SIGKILL');
    process.kill(app, 'SIGKILL');
    await until(() => !isAlive(oldSidecar) && !isAlive(app), 'the old app and sidecar to be gone');

    const { container } = render(<PortTable portd={portd} watchPorts={[port]} refreshInterval={200} />);
    const watched = () => container.querySelector(`.portd-ports__watched tr[data-port="${port}"]`);
    await waitFor(() => expect(watched()?.getAttribute('data-orphan')).toBe('true'), WAIT);
    expect(watched()?.textContent).toContain(`pid ${server.pid}`);
    expect(watched()?.textContent).toContain('vite');
    fireEvent.click(screen.getByRole('button', { name: 'Reclaim' }));
    await until(() => !isAlive(server.pid as number), 'the orphan to be ended');
    await waitFor(() => expect(watched()?.textContent).toContain('free'), WAIT);
  });

  it('describePortEvent says what each event means', () => {
    const t = 0;
    expect(describePortEvent({ type: 'PortChanged', service: 'api', old_port: 1, new_port: 2, timestamp: t })).toBe('api moved 1 → 2');
    expect(describePortEvent({ type: 'PortConflict', service: 'api', port: 1, error: 'held by pid 9', timestamp: t })).toBe(
      'api: port 1 is taken — held by pid 9',
    );
    expect(describePortEvent({ type: 'PortAvailable', port: 1, timestamp: t })).toBe('port 1 is free again');
    expect(describePortEvent({ type: 'HealthCheckFailed', error: 'registry', timestamp: t })).toBe('health check failed — registry');
    expect(describePortEvent({ type: 'HealthCheckSuccess', timestamp: t })).toBe('health check passed');
    const where = { app_id: 'chat', service: 'api', host: 'vm', address: '127.0.0.1', timestamp: t };
    expect(describePortEvent({ type: 'ServiceUp', port: 1, ...where })).toBe('chat/api is up at 127.0.0.1:1');
    expect(describePortEvent({ type: 'ServiceMoved', old_port: 1, new_port: 2, port: 2, ...where })).toBe(
      'chat/api moved 1 → 127.0.0.1:2',
    );
    expect(describePortEvent({ type: 'ServiceDown', port: 2, ...where })).toBe('chat/api is down (was at 127.0.0.1:2)');
  });
});
