// Spawning the real sidecar for tests: from the project's .venv (`python -m portd serve`), or the
// frozen binary in $PORTD_SIDECAR. Every registry is a temp file; every pid is killed afterwards.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Transport, TransportFactory } from '../../src/transport.js';
import { spawnNodeTransport } from '../../src/transports/node.js';

export const BINDINGS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface SidecarCommand {
  command: string;
  args: string[];
}

/** The command line of a sidecar on `registry`, owned by this test process. */
export function sidecarCommand(registry: string, extra: string[] = [], parentPid = process.pid): SidecarCommand {
  const serve = ['serve', '--registry', registry, '--parent-pid', String(parentPid), ...extra];
  const frozen = process.env['PORTD_SIDECAR'];
  if (frozen) return { command: frozen, args: serve };
  return { command: resolve(BINDINGS_DIR, '../.venv/bin/python'), args: ['-m', 'portd', ...serve] };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Per-test bookkeeping: a temp dir for registries, and the pids of every sidecar spawned, all
 * killed (SIGKILL, by pid) in `cleanup()`.
 */
export class Sidecars {
  readonly dir = mkdtempSync(join(tmpdir(), 'portd-bindings-'));
  readonly pids = new Set<number>();
  readonly stderr: string[] = [];
  readonly registry = join(this.dir, 'registry.sqlite3');

  /** Remember a pid to kill at the end. */
  track(pid: number | undefined): void {
    if (pid !== undefined) this.pids.add(pid);
  }

  /** A transport factory spawning a real sidecar on this test's registry. */
  factory(extra: string[] = [], parentPid = process.pid): TransportFactory & { spawned: Transport[] } {
    const spawned: Transport[] = [];
    const make = () => {
      const { command, args } = sidecarCommand(this.registry, extra, parentPid);
      const t = spawnNodeTransport({ command, args, onStderr: (line) => this.stderr.push(line) });
      this.track(t.pid);
      spawned.push(t);
      return t;
    };
    return Object.assign(make, { spawned });
  }

  /**
   * A stand-in app process (idle node) to own the leases: then a listener in this test process
   * is a stranger to them, not the owner or one of its descendants.
   */
  fakeApp(): number {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error('could not start the fake app');
    this.track(child.pid);
    return child.pid;
  }

  cleanup(): void {
    for (const pid of this.pids) {
      if (isAlive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    this.pids.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Wait until `check` holds (polling; no fixed sleeps as assertions). */
export async function until(check: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
