// @vitest-environment jsdom
// The seed's three usage examples (examples/*, shown verbatim in README.md) against a real
// sidecar, through the default instance and the singletons, as an app would use them. Each test
// loads the package afresh (vi.resetModules), so each has its own default instance and sidecar.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BINDINGS_DIR, Sidecars } from './support/sidecar.js';

const WAIT = { timeout: 15_000 };
let sidecars: Sidecars;
let portd: typeof import('portd');

function region(file: string): string {
  const text = readFileSync(join(BINDINGS_DIR, 'examples', file), 'utf8');
  const start = text.indexOf('// #region readme\n');
  const end = text.indexOf('// #endregion readme');
  if (start === -1 || end === -1) throw new Error(`no readme region in ${file}`);
  return text.slice(start + '// #region readme\n'.length, end).trimEnd();
}

beforeEach(async () => {
  vi.resetModules();
  sidecars = new Sidecars();
  portd = await import('portd');
  // The one line of set-up an app adds (with the node transport here, tauriTransport() in Tauri).
  portd.configurePortd({ transport: sidecars.factory(), reconnection: { initialDelay: 20, jitter: false } });
});

afterEach(async () => {
  cleanup();
  vi.restoreAllMocks();
  await portd.getDefaultPortd().close();
  sidecars.cleanup();
});

describe('README', () => {
  it('shows the examples exactly as they are type-checked and run here', () => {
    const readme = readFileSync(join(BINDINGS_DIR, 'README.md'), 'utf8');
    for (const file of ['seed-1-basic.tsx', 'seed-2-provider.tsx', 'seed-3-manual.ts']) {
      expect(readme, file).toContain(region(file));
    }
  });
});

describe("the seed's examples", () => {
  it('1. usePortDiscovery: shows the port and the health, logs port changes', async () => {
    const { portDiscoveryService, healthCheckService } = portd;
    const { MyComponent } = await import('../examples/seed-1-basic.js');
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    render(<MyComponent />);
    const portText = await screen.findByText(/^Current Port: \d+$/, {}, WAIT);
    const oldPort = Number(portText.textContent?.replace('Current Port: ', ''));
    expect(oldPort).toBe(portDiscoveryService.getCurrentPort());
    await screen.findByText(/^Status: (healthy|unhealthy)$/, {}, WAIT);

    const checks = healthCheckService.getHealthStats().totalChecks;
    fireEvent.click(screen.getByRole('button', { name: 'Check Health' }));
    await waitFor(() => expect(healthCheckService.getHealthStats().totalChecks).toBe(checks + 1), WAIT);

    const newPort = await portDiscoveryService.handlePortConflict('frontend');
    await screen.findByText(`Current Port: ${newPort}`, {}, WAIT);
    expect(log).toHaveBeenCalledWith(`Port changed: ${oldPort} -> ${newPort}`);
  });

  it('2. PortDiscoveryProvider with HealthCheck and ConnectionStatus', async () => {
    const { App } = await import('../examples/seed-2-provider.js');
    render(<App />);
    await screen.findByText('Connected', {}, WAIT);
    const list = await screen.findByRole('list', { name: 'components' }, WAIT);
    expect(list.textContent).toContain('port_manager');
    expect(screen.getByText(new RegExp(`pid ${portd.getDefaultPortd().client.pid}, portd `))).toBeTruthy();
  });

  it('3. the services by hand', async () => {
    const example = await import('../examples/seed-3-manual.js');
    expect(example.port).toBeTypeOf('number');
    expect(example.available).toBeTypeOf('boolean');
    expect(example.newPort).toBeTypeOf('number');
    expect(example.newPort).not.toBe(example.port);
    expect((await portd.portDiscoveryService.getPortInfo('my-service')).port).toBe(example.newPort);
    expect(portd.portDiscoveryService.isInitialized).toBe(true);
  });
});
