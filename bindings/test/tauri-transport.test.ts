// @vitest-environment jsdom
//
// The tauri transport driving the REAL @tauri-apps/plugin-shell code. `mockIPC` stands in for
// Tauri's Rust side, and does what tauri-plugin-shell does: `plugin:shell|spawn` starts the real
// sidecar (node's child_process), reads its stdout line by line (newline kept, as
// tauri::utils::io::read_line does) and sends each line through the spawn call's Channel as
// `{ event: 'Stdout', payload }`, then `{ event: 'Terminated', payload: { code, signal } }`;
// `plugin:shell|stdin_write` writes `buffer` to stdin; `plugin:shell|kill` kills the child.
// So what is proved here is the plugin's own message shapes, not a hand-made fake.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { Channel } from '@tauri-apps/api/core';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  ConnectionResilienceService,
  InvalidParamsError,
  PortdClient,
  UnknownServiceError,
  type PortEvent,
} from '../src/index.js';
import { spawnTauriTransport, tauriTransport } from '../src/transports/tauri.js';
import { Sidecars, isAlive, sidecarCommand, until } from './support/sidecar.js';

declare global {
  interface Window {
    /** Set by mockIPC; in a real app, by Tauri. The Rust side calls back through it. */
    __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void };
  }
}

interface Invocation {
  cmd: string;
  args: Record<string, unknown>;
}

let sidecars: Sidecars;
let invocations: Invocation[];
const children = new Map<number, ChildProcess>();
const spawnedChildren = new Set<ChildProcess>();
const clients: PortdClient[] = [];

/** What Tauri's Rust side would run for `Command.sidecar('binaries/portd', args)`. */
function realSidecar(args: string[]): { command: string; args: string[] } {
  const { command, args: full } = sidecarCommand(sidecars.registry);
  const prefix = full.slice(0, full.indexOf('serve'));
  return { command, args: [...prefix, ...args] };
}

function installShellPluginBackend(): void {
  mockIPC((cmd, payload) => {
    const args = (payload ?? {}) as Record<string, unknown>;
    invocations.push({ cmd, args });
    switch (cmd) {
      case 'plugin:shell|spawn': {
        const onEvent = args['onEvent'] as Channel<unknown>;
        const program = args['program'] as string;
        const options = args['options'] as { sidecar?: boolean };
        if (program !== 'binaries/portd' || options.sidecar !== true) {
          throw new Error(`sidecar not allowed: ${program}`);
        }
        const real = realSidecar(args['args'] as string[]);
        const child = spawn(real.command, real.args, { stdio: ['pipe', 'pipe', 'pipe'] });
        sidecars.track(child.pid);
        spawnedChildren.add(child);
        let index = 0;
        // The Rust side answers through the channel's callback with ordered { index, message }.
        const send = (message: unknown) => {
          window.__TAURI_INTERNALS__.runCallback(onEvent.id, { index: index++, message });
        };
        const lines = (event: 'Stdout' | 'Stderr') => {
          let buffer = '';
          return (chunk: Buffer) => {
            buffer += chunk.toString('utf8');
            let nl = buffer.indexOf('\n');
            while (nl !== -1) {
              send({ event, payload: buffer.slice(0, nl + 1) }); // newline kept, like read_line
              buffer = buffer.slice(nl + 1);
              nl = buffer.indexOf('\n');
            }
          };
        };
        child.stdout.on('data', lines('Stdout'));
        child.stderr.on('data', lines('Stderr'));
        child.on('close', (code, signal) => {
          send({ event: 'Terminated', payload: { code, signal: signal ? constants.signals[signal] : null } });
        });
        return new Promise((resolve, reject) => {
          child.once('spawn', () => {
            children.set(child.pid as number, child);
            resolve(child.pid);
          });
          child.once('error', reject);
        });
      }
      case 'plugin:shell|stdin_write': {
        const child = children.get(args['pid'] as number);
        const buffer = args['buffer'];
        child?.stdin?.write(typeof buffer === 'string' ? buffer : Buffer.from(buffer as number[]));
        return null;
      }
      case 'plugin:shell|kill': {
        const pid = args['pid'] as number;
        children.get(pid)?.kill('SIGKILL');
        children.delete(pid);
        return null;
      }
      default:
        throw new Error(`unexpected IPC command ${cmd}`);
    }
  });
}

beforeEach(() => {
  sidecars = new Sidecars();
  invocations = [];
  installShellPluginBackend();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.abandon();
  // Let every child's Terminated reach the channel before the IPC mock goes away.
  await Promise.all(
    [...spawnedChildren].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  spawnedChildren.clear();
  children.clear();
  clearMocks();
  sidecars.cleanup();
});

const ARGS = () => ['serve', '--registry', sidecars.registry, '--parent-pid', String(process.pid)];

function client(): PortdClient {
  const c = new PortdClient(tauriTransport({ program: 'binaries/portd', args: ARGS() }));
  clients.push(c);
  return c;
}

describe('tauri transport over the real @tauri-apps/plugin-shell (mockIPC → real sidecar)', () => {
  it('spawns with Command.sidecar, reads ready and answers from Stdout events, writes with stdin_write', async () => {
    const c = client();
    const ready = await c.ready;
    expect(ready.protocol).toBe(1);
    expect(ready.owner_pid).toBe(process.pid);

    const spawnCall = invocations.find((i) => i.cmd === 'plugin:shell|spawn');
    expect(spawnCall?.args).toMatchObject({ program: 'binaries/portd', args: ARGS(), options: { sidecar: true } });
    expect(spawnCall?.args['onEvent']).toBeInstanceOf(Channel);

    const port = await c.allocatePort('vite');
    expect(port).toBeGreaterThan(0);
    const write = invocations.find((i) => i.cmd === 'plugin:shell|stdin_write');
    expect(write?.args['pid']).toBe(c.pid);
    expect(write?.args['buffer']).toMatch(/^\{"jsonrpc":"2\.0","id":\d+,"method":"allocate_port","params":\{"service_name":"vite"\}\}\n$/);

    expect(await c.getPortInfo('vite')).toMatchObject({ service: 'vite', port });
  });

  it('delivers port events and error subclasses', async () => {
    const c = client();
    const events: PortEvent[] = [];
    c.onEvent((e) => events.push(e));
    const oldPort = await c.allocatePort('vite');
    const newPort = await c.handlePortConflict('vite');
    await until(() => events.some((e) => e.type === 'PortChanged'), 'PortChanged');
    expect(events.find((e) => e.type === 'PortChanged')).toMatchObject({ old_port: oldPort, new_port: newPort, service: 'vite' });
    await expect(c.getPortInfo('nope')).rejects.toBeInstanceOf(UnknownServiceError);
    await expect(c.isPortAvailable(70000)).rejects.toBeInstanceOf(InvalidParamsError);
  });

  it('kill() goes through plugin:shell|kill and Terminated closes the client', async () => {
    const c = client();
    await c.ready;
    const pid = c.pid as number;
    await c.kill();
    expect(invocations.find((i) => i.cmd === 'plugin:shell|kill')?.args).toEqual({ cmd: 'killChild', pid });
    await until(() => c.state === 'disconnected', 'disconnected');
    expect(isAlive(pid)).toBe(false);
    await expect(c.getStats()).rejects.toBeInstanceOf(ConnectionError);
  });

  it('close() sends shutdown; the sidecar exits 0 by itself', async () => {
    const c = client();
    await c.allocatePort('vite');
    const pid = c.pid as number;
    await c.close();
    expect(c.state).toBe('closed');
    expect(isAlive(pid)).toBe(false);
    const methods = invocations
      .filter((i) => i.cmd === 'plugin:shell|stdin_write')
      .map((i) => (JSON.parse(i.args['buffer'] as string) as { method: string }).method);
    expect(methods.at(-1)).toBe('shutdown');
  });

  it('resilience respawns through Command.sidecar after the sidecar dies', async () => {
    const c = client();
    const resilience = new ConnectionResilienceService(c, { initialDelay: 20, jitter: false }, { checkInterval: 0 });
    await resilience.startMonitoring();
    const port = await c.allocatePort('vite');
    const first = c.pid as number;
    process.kill(first, 'SIGKILL');
    await until(() => c.state === 'reconnecting' || c.pid !== first, 'the death to be seen');
    expect(await c.getPortInfo('vite', { timeoutMs: 20_000 })).toMatchObject({ port });
    expect(c.pid).not.toBe(first);
    expect(invocations.filter((i) => i.cmd === 'plugin:shell|spawn')).toHaveLength(2);
    resilience.stopMonitoring();
  });

  it('takes a Stdout payload without its newline as a whole line (plugins that strip it)', async () => {
    mockIPC((cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      if (cmd === 'plugin:shell|spawn') {
        const ch = args['onEvent'] as Channel<unknown>;
        const ready = { jsonrpc: '2.0', method: 'ready', params: { version: 'x', protocol: 1, pid: 1, framing: 'ndjson', registry: 'r', owner_pid: 1, app_id: 'a' } };
        setTimeout(() => window.__TAURI_INTERNALS__.runCallback(ch.id, { index: 0, message: { event: 'Stdout', payload: JSON.stringify(ready) } }));
        return 4242;
      }
      return null;
    });
    const t = await spawnTauriTransport();
    expect(t.pid).toBe(4242);
    const c = new PortdClient(t);
    clients.push(c);
    expect((await c.ready).version).toBe('x');
  });
});
