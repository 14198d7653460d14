// @vitest-environment jsdom
// Hooks and components with @testing-library/react against a real sidecar.
import { act, cleanup, fireEvent, render, renderHook, screen, waitFor } from '@testing-library/react';
import { createServer, type Server } from 'node:net';
import type { ReactNode } from 'react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Portd } from '../src/index.js';
import {
  ConnectionStatus,
  HealthCheck,
  PortDiscoveryProvider,
  usePortDiscovery,
  usePortDiscoveryContext,
} from '../src/react/index.js';
import { Sidecars, until } from './support/sidecar.js';

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
});
