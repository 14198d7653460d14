// The dashboard example in a real browser: the example's Vite dev server (started here, on a
// free port of 127.0.0.1) with the portd plugin spawning the real sidecar on a temp registry;
// Debian's Chromium driven by playwright-core. The page shows the allocated ports; a squatter
// takes one; the page shows the conflict and the new port. Then: a production build of the same
// page carries nothing of the relay.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { build, createServer, type Plugin, type Rolldown, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardConfig } from '../examples/dashboard/vite.config.js';
import type { PortdViteApi } from '../src/vite/index.js';
import { ensureChromium, launchChromium, listeningPorts } from './support/browser.js';
import { BINDINGS_DIR, Sidecars, isAlive, sidecarCommand, until } from './support/sidecar.js';

const ARTIFACTS = resolve(BINDINGS_DIR, '../test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'dashboard.png');
/** How long the page may take to show what the sidecar did (the conflict scan runs every 0.5 s). */
const SEEN = 10_000;

interface Lease {
  service: string;
  port: number;
  app_id: string;
  owner_pid: number;
}

/** The registry as `portd ls --json` reads it: what the sidecar really leased. */
function registryLeases(registry: string): Lease[] {
  const { command, args } = sidecarCommand(registry);
  const ls = [...args.slice(0, args.indexOf('serve')), 'ls', '--json', '--registry', registry];
  const out = execFileSync(command, ls, { encoding: 'utf8', timeout: 30_000 });
  return (JSON.parse(out) as { leases: Lease[] }).leases;
}

/** A process outside the app that listens on `port` (the test process's child, not the app's). */
async function squat(port: number, pids: Set<number>): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${port}, () => console.log('listening'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (child.pid !== undefined) pids.add(child.pid);
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the squatter exited (${code}) before listening on ${port}`)));
    child.stdout?.once('data', () => resolve());
  });
  return child;
}

function portOf(page: Page, service: string): Promise<number> {
  return page
    .locator(`.portd-ports__leases tr[data-service="${service}"]`)
    .getAttribute('data-port')
    .then((p) => Number(p));
}

describe('the dashboard in Chromium', () => {
  const sidecars = new Sidecars();
  const extraPids = new Set<number>();
  const tmp = mkdtempSync(join(tmpdir(), 'portd-dashboard-'));
  const stderr: string[] = [];
  const consoleErrors: string[] = [];
  let server: ViteDevServer | undefined;
  let context: BrowserContext | undefined;
  let plugin: Plugin<PortdViteApi> | undefined;

  beforeAll(() => {
    ensureChromium();
  }, 900_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    const pids = plugin?.api?.pids() ?? [];
    await server?.close().catch(() => undefined);
    for (const pid of [...pids, ...extraPids]) {
      if (isAlive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    sidecars.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('shows the allocated ports, then a squatter\'s conflict and the new port within seconds', async () => {
    // The leases' owner is a stand-in app, so the squatter (this process's child) is a stranger.
    const app = sidecars.fakeApp();
    const { command, args } = sidecarCommand(sidecars.registry, [], app);
    server = await createServer({
      ...dashboardConfig({ command, args, onStderr: (line) => stderr.push(line) }),
      configFile: false,
      cacheDir: join(tmp, 'vite-cache'),
      logLevel: 'warn',
      server: { host: '127.0.0.1', port: 0, strictPort: true, watch: null },
    });
    await server.listen();
    plugin = server.config.plugins.find((p) => p.name === 'portd') as Plugin<PortdViteApi> | undefined;
    expect(plugin?.api).toBeDefined();
    const url = server.resolvedUrls?.local[0];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const vitePort = Number(new URL(url as string).port);
    expect(vitePort).toBeGreaterThan(0);

    context = await launchChromium(join(tmp, 'chromium-profile'));
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    // Lease from a range of its own, clear of the 1421-1500 that other sidecars on this machine use.
    const low = 20_000 + 200 * Math.floor(Math.random() * 50);
    await page.goto(`${url as string}?range=${low}-${low + 199}`);

    // The allocated ports: the frontend's and the two the page leases at start.
    const table = page.locator('.portd-ports__leases');
    for (const service of ['frontend', 'api', 'db']) {
      await table.locator(`tr[data-service="${service}"]`).waitFor({ timeout: 30_000 });
    }
    await page.getByText('Connected', { exact: true }).waitFor({ timeout: SEEN });
    const ports = { frontend: await portOf(page, 'frontend'), api: await portOf(page, 'api'), db: await portOf(page, 'db') };
    for (const [service, port] of Object.entries(ports)) {
      expect(port, service).toBeGreaterThanOrEqual(low);
      expect(port, service).toBeLessThanOrEqual(low + 199);
      await expect(table.locator(`tr[data-service="${service}"] .portd-port`).textContent()).resolves.toBe(String(port));
    }
    expect(new Set(Object.values(ports)).size).toBe(3);
    const leased = registryLeases(sidecars.registry);
    for (const [service, port] of Object.entries(ports)) {
      expect(leased, service).toContainEqual(expect.objectContaining({ service, port, app_id: 'portd-dashboard', owner_pid: app }));
    }

    // One sidecar, spawned by the plugin; it listens on nothing, and this process (where Vite
    // runs) on Vite's port only: the relay rides Vite's own WebSocket.
    const sidecarPids = plugin?.api?.pids() ?? [];
    expect(sidecarPids).toHaveLength(1);
    const sidecarPid = sidecarPids[0] as number;
    extraPids.add(sidecarPid);
    await expect(page.locator('.portd-connection').textContent()).resolves.toContain(`pid ${sidecarPid}, portd `);
    if (process.platform === 'linux') {
      expect(listeningPorts(sidecarPid)).toEqual([]);
      expect(listeningPorts(process.pid)).toEqual([vitePort]);
    }

    // A squatter takes the api's port: the sidecar moves the api, and the page shows it.
    const squatter = await squat(ports.api, extraPids);
    const apiRow = table.locator('tr[data-service="api"]');
    await until(async () => (await portOf(page, 'api')) !== ports.api, 'the api row to show a new port', SEEN);
    const newPort = await portOf(page, 'api');
    expect(newPort).toBeGreaterThanOrEqual(low);
    expect([await portOf(page, 'frontend'), await portOf(page, 'db')]).not.toContain(newPort);
    await expect(apiRow.locator('.portd-ports__moved').textContent()).resolves.toBe(`was ${ports.api}`);
    const event = page.locator('.portd-events__item[data-type="PortChanged"]').first();
    await event.waitFor({ timeout: SEEN });
    await expect(event.textContent()).resolves.toContain(`api moved ${ports.api} → ${newPort}`);
    const conflict = page.locator(`.portd-ports__watched tr[data-port="${ports.api}"]`);
    await conflict.waitFor({ timeout: SEEN });
    await until(async () => (await conflict.getAttribute('data-state')) === 'conflict', 'the conflict row', SEEN);
    const conflictText = await conflict.textContent();
    expect(conflictText).toContain(`pid ${squatter.pid}`);
    expect(conflictText).toContain('taken from api');
    expect(registryLeases(sidecars.registry)).toContainEqual(expect.objectContaining({ service: 'api', port: newPort }));

    // The rest of the page is alive: health checks ran and the chart has points.
    await page.locator('.portd-health__component').first().waitFor({ timeout: SEEN });
    await until(async () => (await page.locator('.portd-chart__dot').count()) >= 4, 'four latency samples', 20_000);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
    expect(consoleErrors).toEqual([]);
  }, 120_000);

  it('closing the dev server ends the sidecar (the page still open)', async () => {
    const pids = plugin?.api?.pids() ?? [];
    expect(pids.length).toBeGreaterThan(0);
    await server?.close();
    server = undefined;
    await until(() => pids.every((pid) => !isAlive(pid)), 'the sidecar to exit', 10_000);
    expect(plugin?.api?.pids()).toEqual([]);
    // Ended gracefully (stdin closed), not killed: it released the page's leases.
    expect(registryLeases(sidecars.registry)).toEqual([]);
    await context?.close();
    context = undefined;
  }, 30_000);

  it('vite build: nothing of the plugin or the relay in the production bundle', async () => {
    const config = dashboardConfig();
    const portd = (config.plugins ?? []).find((p) => p && typeof p === 'object' && 'name' in p && p.name === 'portd') as Plugin;
    expect(portd.apply).toBe('serve');
    const result = await build({
      ...config,
      configFile: false,
      cacheDir: join(tmp, 'vite-build-cache'),
      logLevel: 'warn',
      build: { write: false, outDir: join(tmp, 'dist'), minify: false },
    });
    const outputs = (Array.isArray(result) ? result : [result]) as Rolldown.RolldownOutput[];
    const files = outputs.flatMap((o) => o.output);
    const code = files.map((f) => (f.type === 'chunk' ? f.code : String(f.source))).join('\n');
    expect(code).toContain('portd-dashboard'); // the page is in it
    expect(code).toContain('portd-ports'); // and the components
    for (const relay of ['portd:spawn', 'portd:send', 'portd:line', 'portd:exit', 'vite:client:disconnect', 'import.meta.hot', 'child_process', 'did not start a sidecar']) {
      expect(code, relay).not.toContain(relay);
    }
  }, 120_000);
});
