// An in-process stand-in for the sidecar, for what a real process cannot make deterministic:
// back-off timing under fake timers, a sidecar that never starts, one that hangs.
import { TransportHub, type Transport } from '../../src/transport.js';
import type { Ready } from '../../src/protocol.js';

let nextPid = 100_000;

export type Handler = (method: string, params: Record<string, unknown>) => unknown;

export const defaultHandler: Handler = (method, params) => {
  switch (method) {
    case 'allocate_port':
      return (params['preferred_port'] as number | undefined) ?? 1421;
    case 'get_stats':
      return { allocations: 0, releases: 0, conflicts: 0, resolutions: 0, health_checks: 0, uptime: 1 };
    case 'init_port_manager':
      return {};
    case 'shutdown':
      return null;
    default:
      return null;
  }
};

export interface FakeOptions {
  /** Die at once with exit code 1 instead of sending ready. */
  fail?: boolean;
  /** Never send ready. */
  silent?: boolean;
  /** Answer requests; return `HANG` to never answer. */
  handler?: Handler;
}

export const HANG = Symbol('hang');

export class FakeSidecar implements Transport {
  readonly pid = nextPid++;
  readonly hub = new TransportHub();
  readonly sent: { id: number; method: string; params: Record<string, unknown> }[] = [];
  readonly onLine = this.hub.onLine;
  readonly onClose = this.hub.onClose;
  readonly #handler: Handler;

  constructor(options: FakeOptions = {}) {
    this.#handler = options.handler ?? defaultHandler;
    queueMicrotask(() => {
      if (options.fail) {
        this.hub.close({ reason: 'exit', code: 1, signal: null });
        return;
      }
      if (options.silent) return;
      const ready: Ready = {
        version: 'fake',
        protocol: 1,
        pid: this.pid,
        framing: 'ndjson',
        registry: ':memory:',
        owner_pid: 1,
        app_id: 'default',
      };
      this.hub.line(JSON.stringify({ jsonrpc: '2.0', method: 'ready', params: ready }));
    });
  }

  get alive(): boolean {
    return this.hub.closed === undefined;
  }

  send(line: string): void {
    if (!this.alive) throw new Error('EPIPE');
    const msg = JSON.parse(line) as { id: number; method: string; params: Record<string, unknown> };
    this.sent.push(msg);
    const result = this.#handler(msg.method, msg.params);
    if (result === HANG) return;
    queueMicrotask(() => {
      if (this.alive) this.hub.line(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    });
  }

  die(signal: string | null = 'SIGKILL'): void {
    this.hub.close({ reason: 'exit', code: signal ? null : 0, signal });
  }

  close(): void {
    this.die(null);
  }

  kill(): void {
    this.die('SIGKILL');
  }
}
