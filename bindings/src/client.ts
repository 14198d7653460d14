/**
 * `PortdClient`: typed JSON-RPC 2.0 over any {@link Transport}. No runtime of its own (no Node,
 * no Tauri, no React): it needs only `setTimeout`, `queueMicrotask` and `AbortSignal`.
 *
 * @module
 */
import { ConnectionError, PortdError, ResponseError, type JsonRpcErrorObject } from './errors.js';
import { Listeners } from './internal/listeners.js';
import type {
  HealthCheckResult,
  MethodName,
  ParamsOf,
  PortConfig,
  PortConfigUpdate,
  PortEvent,
  PortInfo,
  PortOwner,
  PortPlanSummary,
  Ready,
  ResultOf,
  ServiceLocation,
  Stats,
  SystemHealthStatus,
  CamelCase,
} from './protocol.js';
import type { Transport, TransportCloseInfo, TransportFactory } from './transport.js';

/**
 * Options of one call.
 *
 * @example
 * ```ts
 * const ctl = new AbortController();
 * const status = client.performHealthCheck({ timeoutMs: 10_000, signal: ctl.signal });
 * ctl.abort(); // status rejects with ctl.signal.reason
 * ```
 */
export interface CallOptions {
  /**
   * Give up after this many ms, counted from the call (time spent waiting for `ready` included),
   * with a {@link ConnectionError} `timeout`. Default: the client's `defaultTimeoutMs`;
   * `0` or `Infinity`: never.
   */
  timeoutMs?: number;
  /** Abort the call: it rejects with `signal.reason`. The sidecar may still carry it out. */
  signal?: AbortSignal;
}

/**
 * Options of a {@link PortdClient}.
 *
 * @example
 * ```ts
 * const client = new PortdClient(nodeTransport({ command: 'portd' }), {
 *   defaultTimeoutMs: 10_000,
 *   readyTimeoutMs: 20_000,
 * });
 * ```
 */
export interface PortdClientOptions {
  /** Time-out of a call that gives none (ms). Default 30 000. */
  defaultTimeoutMs?: number;
  /** How long a new sidecar may take to send `ready` (ms). Default 15 000. */
  readyTimeoutMs?: number;
  /** How long {@link PortdClient.close} waits at each step (shutdown, stdin EOF) (ms). Default 3 000. */
  closeTimeoutMs?: number;
  /** Lines that are not JSON-RPC, answers to no call, and the like. Default: ignored. */
  onProtocolError?: (error: Error, line?: string) => void;
}

/**
 * Where the client is:
 * - `idle`: no transport yet ({@link PortdClient.connect} not called);
 * - `connecting`: a sidecar is starting, calls queue until its `ready`;
 * - `ready`: calls go out at once;
 * - `reconnecting`: the sidecar died and a supervisor will start another: calls queue;
 * - `disconnected`: the sidecar died and nobody will restart it: calls fail at once;
 * - `closed`: {@link PortdClient.close} was called.
 *
 * @example
 * ```ts
 * client.onStateChange((state) => console.log('portd is', state));
 * ```
 */
export type ClientState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'disconnected' | 'closed';

/**
 * A lease this client took, moved or gave back.
 *
 * @example
 * ```ts
 * client.onLeaseChange(({ service, oldPort, newPort }) => console.log(service, oldPort, '->', newPort));
 * ```
 */
export interface LeaseChange {
  readonly service: string;
  /** The port before (undefined: newly allocated). */
  readonly oldPort: number | undefined;
  /** The port now (undefined: released). */
  readonly newPort: number | undefined;
  /** What moved it. */
  readonly cause: 'allocate' | 'conflict' | 'event' | 'release' | 'reconnect';
}

/**
 * One convenience method per RPC, named in camelCase, returning that RPC's result type. The
 * client `implements` it, so a method added to the protocol fails type-checking until it is here.
 *
 * @example
 * ```ts
 * type AllocatePort = PortdClientMethods['allocatePort']; // (...) => Promise<number>
 * ```
 */
export type PortdClientMethods = {
  [K in MethodName as CamelCase<K>]: (...args: never[]) => Promise<ResultOf<K>>;
};

/**
 * The arguments of {@link PortdClient.call} for a method: params may be left out when every
 * param is optional.
 *
 * @example
 * ```ts
 * const args: CallArgs<'get_stats'> = [];
 * ```
 */
export type CallArgs<M extends MethodName> = {} extends ParamsOf<M>
  ? [params?: ParamsOf<M>, options?: CallOptions]
  : [params: ParamsOf<M>, options?: CallOptions];

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a rejection nobody awaits is not an unhandled one
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (v) => {
      d.settled = true;
      resolve(v);
    },
    reject: (e) => {
      d.settled = true;
      reject(e);
    },
  };
  return d;
}

interface Pending {
  readonly method: MethodName;
  readonly params: object;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  id: number | undefined;
  cleanup: () => void;
}

interface Connection {
  readonly generation: number;
  transport: Transport | undefined;
  readonly ready: Deferred<Ready>;
  readyInfo: Ready | undefined;
  readyTimer: ReturnType<typeof setTimeout> | undefined;
  detach: () => void;
  lost: boolean;
}

function abortReason(signal: AbortSignal): unknown {
  if (signal.reason !== undefined) return signal.reason;
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

function describeExit(info: TransportCloseInfo): string {
  if (info.reason === 'spawn-failed') return `could not be started (${info.error?.message ?? 'spawn failed'})`;
  if (info.signal !== null) return `was killed (signal ${String(info.signal)})`;
  if (info.code !== null) return `exited (code ${info.code})`;
  return info.error ? `broke (${info.error.message})` : 'went away';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A typed JSON-RPC client of one portd sidecar at a time.
 *
 * Calls made before the sidecar's `ready` are queued and sent after it. Each call has a time-out
 * and can be cancelled. An error answer rejects with a {@link ResponseError} subclass; no answer
 * (sidecar gone, time-out, spawn failure) with a {@link ConnectionError}. With a
 * {@link TransportFactory} the client can {@link PortdClient.connect | reconnect}, which is what
 * {@link ConnectionResilienceService} does after a crash.
 *
 * @example
 * ```ts
 * import { PortdClient, UnknownServiceError } from 'portd';
 * import { nodeTransport } from 'portd/transports/node';
 *
 * const client = new PortdClient(nodeTransport({ command: '/opt/app/portd' }));
 * const ready = await client.ready;                 // { version, protocol: 1, pid, … }
 * const port = await client.allocatePort('vite');   // 1421
 * client.onEvent((e) => { if (e.type === 'PortChanged') console.log(e.old_port, '->', e.new_port); });
 * await client.call('get_port_info', { service_name: 'vite' }, { timeoutMs: 2000 });
 * await client.close();                             // the sidecar releases its leases and exits
 * ```
 */
export class PortdClient implements PortdClientMethods {
  readonly #options: Required<Omit<PortdClientOptions, 'onProtocolError'>> & {
    onProtocolError: PortdClientOptions['onProtocolError'] | undefined;
  };
  #factory: TransportFactory | undefined;
  #state: ClientState = 'idle';
  #conn: Connection | undefined;
  #generation = 0;
  #nextId = 0;
  #ready: Deferred<Ready> = deferred<Ready>();
  #closing: Promise<void> | undefined;
  readonly #queue: Pending[] = [];
  readonly #inflight = new Map<number, Pending>();
  readonly #leases = new Map<string, number>();
  readonly #eventListeners = new Listeners<[PortEvent]>();
  readonly #notificationListeners = new Listeners<[string, unknown]>();
  readonly #stateListeners = new Listeners<[ClientState, ClientState]>();
  readonly #leaseListeners = new Listeners<[LeaseChange]>();
  readonly #readyListeners = new Listeners<[Ready]>();

  /**
   * When true, a sidecar that dies leaves the client `reconnecting` (calls wait, bounded by their
   * time-outs) rather than `disconnected` (calls fail at once). Set by
   * {@link ConnectionResilienceService.startMonitoring}.
   */
  supervised = false;

  /**
   * @param transport A transport factory (the client starts the sidecar now, and again on
   *   reconnect), a running transport (no reconnect possible), or nothing (call
   *   {@link PortdClient.connect} later).
   */
  constructor(transport?: TransportFactory | Transport, options: PortdClientOptions = {}) {
    this.#options = {
      defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
      readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
      closeTimeoutMs: options.closeTimeoutMs ?? 3_000,
      onProtocolError: options.onProtocolError,
    };
    if (transport !== undefined) {
      if (typeof transport === 'function') {
        this.#factory = transport;
      } else {
        let used = false;
        this.#factory = () => {
          if (used) throw new ConnectionError('spawn-failed', 'portd: this client was given one transport and cannot respawn it');
          used = true;
          return transport;
        };
      }
      void this.connect().catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ state

  /** Where the client is; see {@link ClientState}. */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Resolves with the `ready` notification of the running sidecar (waits for the next one while
   * connecting or reconnecting; rejects when there is none to wait for).
   */
  get ready(): Promise<Ready> {
    return this.#ready.promise;
  }

  /** The `ready` params of the running sidecar, once it sent them. */
  get readyInfo(): Ready | undefined {
    return this.#conn?.readyInfo;
  }

  /** The running sidecar's pid (from the transport, else from `ready`). */
  get pid(): number | undefined {
    return this.#conn?.transport?.pid ?? this.#conn?.readyInfo?.pid;
  }

  /** Whether a transport factory is known, so {@link PortdClient.connect} can (re)start a sidecar. */
  get canConnect(): boolean {
    return this.#factory !== undefined;
  }

  /** The leases this client holds (service → port), as its calls and the events told it. */
  get leases(): ReadonlyMap<string, number> {
    return new Map(this.#leases);
  }

  /** Calls waiting to be sent and calls waiting for an answer. */
  get pendingCalls(): number {
    return this.#queue.length + this.#inflight.size;
  }

  #setState(next: ClientState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#stateListeners.emit(next, prev);
  }

  // --------------------------------------------------------------- listeners

  /**
   * Listen to `port_event` notifications. Returns the unsubscribe function.
   *
   * @example
   * ```ts
   * const off = client.onEvent((e) => console.log(e.type, e.service));
   * off();
   * ```
   */
  onEvent(listener: (event: PortEvent) => void): () => void {
    return this.#eventListeners.add(listener);
  }

  /**
   * Listen to every notification other than `ready` and `port_event` (future ones).
   *
   * @example
   * ```ts
   * client.onNotification((method, params) => console.debug(method, params));
   * ```
   */
  onNotification(listener: (method: string, params: unknown) => void): () => void {
    return this.#notificationListeners.add(listener);
  }

  /**
   * Listen to state changes.
   *
   * @example
   * ```ts
   * client.onStateChange((state, prev) => console.log(prev, '->', state));
   * ```
   */
  onStateChange(listener: (state: ClientState, previous: ClientState) => void): () => void {
    return this.#stateListeners.add(listener);
  }

  /**
   * Listen to each `ready` (the first, and one per reconnect).
   *
   * @example
   * ```ts
   * client.onReady((r) => console.log('portd', r.version, 'pid', r.pid));
   * ```
   */
  onReady(listener: (ready: Ready) => void): () => void {
    return this.#readyListeners.add(listener);
  }

  /**
   * Listen to changes of the leases this client holds (allocated, moved, released).
   *
   * @example
   * ```ts
   * client.onLeaseChange((c) => { if (c.newPort !== undefined) restartDevServer(c.newPort); });
   * ```
   */
  onLeaseChange(listener: (change: LeaseChange) => void): () => void {
    return this.#leaseListeners.add(listener);
  }

  // -------------------------------------------------------------- lifecycle

  /**
   * Start a sidecar with the transport factory (this one, or the one given before), replacing
   * the running one if any (which is killed; its calls fail with {@link ConnectionError}
   * `closed`). Resolves with its `ready`.
   *
   * @example
   * ```ts
   * const client = new PortdClient();
   * await client.connect(nodeTransport({ command: 'portd' }));
   * ```
   */
  async connect(factory?: TransportFactory): Promise<Ready> {
    if (factory) this.#factory = factory;
    if (this.#state === 'closed' || this.#closing) {
      throw new ConnectionError('closed', 'portd: the client is closed');
    }
    const make = this.#factory;
    if (!make) {
      throw new ConnectionError('spawn-failed', 'portd: no transport configured — pass one to new PortdClient(…) or configurePortd({ transport })');
    }
    const old = this.#conn;
    if (old) this.#drop(old, new ConnectionError('closed', 'portd: the sidecar was replaced by a new one'), true);

    const conn: Connection = {
      generation: ++this.#generation,
      transport: undefined,
      ready: deferred<Ready>(),
      readyInfo: undefined,
      readyTimer: undefined,
      detach: () => undefined,
      lost: false,
    };
    this.#conn = conn;
    if (this.#ready.settled) this.#ready = deferred<Ready>();
    this.#setState('connecting');

    conn.readyTimer = setTimeout(() => {
      this.#lose(conn, new ConnectionError('timeout', `portd: the sidecar sent no ready within ${this.#options.readyTimeoutMs} ms`), true);
    }, this.#options.readyTimeoutMs);

    let transport: Transport;
    try {
      transport = await make();
    } catch (error) {
      this.#lose(conn, error instanceof ConnectionError ? error : new ConnectionError('spawn-failed', `portd: could not start the sidecar: ${errorMessage(error)}`, { cause: error }), false);
      return conn.ready.promise;
    }
    if (conn.lost || this.#conn !== conn) {
      void attempt(() => transport.kill());
      return conn.ready.promise;
    }
    conn.transport = transport;
    const offLine = transport.onLine((line) => {
      if (this.#conn === conn) this.#receive(conn, line);
    });
    const offClose = transport.onClose((info) => {
      if (conn.lost) return;
      const reason = info.reason === 'spawn-failed' ? 'spawn-failed' : 'closed';
      this.#lose(conn, new ConnectionError(reason, `portd: the sidecar ${describeExit(info)}`, { cause: info.error }), false);
    });
    conn.detach = () => {
      offLine();
      offClose();
    };
    return conn.ready.promise;
  }

  /**
   * Stop the sidecar gracefully: queued calls fail, `shutdown` is sent (the sidecar releases
   * this app's leases and exits 0), stdin is closed, and the process is killed if it is still
   * there after `closeTimeoutMs`.
   *
   * @example
   * ```ts
   * window.addEventListener('beforeunload', () => void client.close());
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    const closed = new ConnectionError('closed', 'portd: the client was closed');
    this.#rejectQueue(closed);
    const conn = this.#conn;
    const transport = conn?.transport;
    if (conn && transport && !conn.lost) {
      const gone = new Promise<void>((resolve) => {
        transport.onClose(() => resolve());
      });
      const wait = (ms: number) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), ms);
          void gone.then(() => {
            clearTimeout(timer);
            resolve(true);
          });
        });
      let exited = false;
      if (this.#state === 'ready') {
        // `shutdown`: the sidecar answers, releases this app's leases and exits 0 by itself.
        await this.#request('shutdown', {}, { timeoutMs: this.#options.closeTimeoutMs }, true).catch(() => undefined);
        exited = await wait(this.#options.closeTimeoutMs);
      }
      if (!exited) {
        await attempt(() => transport.close());
        exited = await wait(this.#options.closeTimeoutMs);
      }
      if (!exited) await attempt(() => transport.kill());
    }
    if (conn) this.#drop(conn, closed, false);
    this.#ready.reject(closed);
    this.#setState('closed');
  }

  /**
   * Kill the sidecar now (no `shutdown`: per the design, its leases stay with the app). With a
   * supervisor the client then reconnects; otherwise it is `disconnected`.
   *
   * @example
   * ```ts
   * await client.kill();
   * ```
   */
  async kill(): Promise<void> {
    const transport = this.#conn?.transport;
    if (transport) await transport.kill();
  }

  /**
   * Give up reconnecting: the client becomes `disconnected` and queued calls fail with `error`.
   * Used by {@link ConnectionResilienceService} when its retries run out.
   *
   * @example
   * ```ts
   * client.abandon(new ConnectionError('spawn-failed', 'gave up after 10 attempts'));
   * ```
   */
  abandon(error: ConnectionError = new ConnectionError('closed', 'portd: the sidecar is not running')): void {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    if (conn) this.#drop(conn, error, true);
    this.#rejectQueue(error);
    this.#ready.reject(error);
    this.#setState('disconnected');
  }

  /** Drop a connection: detach it, fail its in-flight calls, optionally kill its process. */
  #drop(conn: Connection, error: ConnectionError, kill: boolean): void {
    conn.lost = true;
    if (conn.readyTimer) clearTimeout(conn.readyTimer);
    conn.detach();
    if (!conn.ready.settled) conn.ready.reject(error);
    if (this.#conn === conn) this.#conn = undefined;
    for (const [id, p] of this.#inflight) {
      this.#inflight.delete(id);
      p.cleanup();
      p.reject(withMethod(error, p.method));
    }
    const transport = conn.transport;
    if (kill && transport) void attempt(() => transport.kill());
  }

  /** The running sidecar is gone (or never came): what happens next depends on supervision. */
  #lose(conn: Connection, error: ConnectionError, kill: boolean): void {
    if (conn.lost) return;
    const current = this.#conn === conn;
    this.#drop(conn, error, kill);
    if (!current || this.#closing) return;
    if (this.#ready.settled) this.#ready = deferred<Ready>();
    if (this.supervised) {
      this.#setState('reconnecting');
    } else {
      this.#rejectQueue(error);
      this.#ready.reject(error);
      this.#setState('disconnected');
    }
  }

  #rejectQueue(error: ConnectionError): void {
    for (const p of this.#queue.splice(0)) {
      p.cleanup();
      p.reject(withMethod(error, p.method));
    }
  }

  // ------------------------------------------------------------------ wire

  #receive(conn: Connection, line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (error) {
      this.#protocolError(new PortdError(`portd: a line from the sidecar is not JSON: ${errorMessage(error)}`), line);
      return;
    }
    const messages = Array.isArray(message) ? (message as unknown[]) : [message];
    for (const m of messages) this.#dispatch(conn, m, line);
  }

  #dispatch(conn: Connection, m: unknown, line: string): void {
    if (!isObject(m) || m['jsonrpc'] !== '2.0') {
      this.#protocolError(new PortdError('portd: not a JSON-RPC 2.0 message'), line);
      return;
    }
    if (typeof m['method'] === 'string' && !('id' in m)) {
      this.#notification(conn, m['method'], m['params']);
      return;
    }
    if ('result' in m || 'error' in m) {
      const id = m['id'];
      const pending = typeof id === 'number' ? this.#inflight.get(id) : undefined;
      if (!pending) {
        const err = isObject(m['error']) ? ` (${String(m['error']['code'])}: ${String(m['error']['message'])})` : '';
        this.#protocolError(new PortdError(`portd: an answer to no pending call, id ${JSON.stringify(id)}${err}`), line);
        return;
      }
      this.#inflight.delete(id as number);
      pending.cleanup();
      if (isObject(m['error'])) {
        const e = m['error'];
        const errorObject: JsonRpcErrorObject = {
          code: typeof e['code'] === 'number' ? e['code'] : -32603,
          message: typeof e['message'] === 'string' ? e['message'] : 'unknown error',
          ...('data' in e ? { data: e['data'] } : {}),
        };
        pending.reject(ResponseError.from(errorObject, pending.method));
      } else {
        this.#observe(pending.method, pending.params, m['result']);
        pending.resolve(m['result']);
      }
      return;
    }
    this.#protocolError(new PortdError('portd: a request from the sidecar; none are expected'), line);
  }

  #notification(conn: Connection, method: string, params: unknown): void {
    if (method === 'ready') {
      if (conn.readyInfo) return;
      const ready = params as Ready;
      if (!isObject(params) || ready.protocol !== 1) {
        this.#protocolError(new PortdError(`portd: the sidecar speaks protocol ${String(isObject(params) ? params['protocol'] : '?')}; this client speaks 1`));
      }
      conn.readyInfo = ready;
      if (conn.readyTimer) clearTimeout(conn.readyTimer);
      conn.ready.resolve(ready);
      if (this.#ready.settled) this.#ready = deferred<Ready>();
      this.#ready.resolve(ready);
      this.#setState('ready');
      this.#readyListeners.emit(ready);
      for (const p of this.#queue.splice(0)) this.#send(p);
      return;
    }
    if (method === 'port_event') {
      const event = params as PortEvent;
      if (event.type === 'PortChanged' && event.service != null && event.new_port != null) {
        this.#setLease(event.service, event.new_port, 'event', true);
      }
      this.#eventListeners.emit(event);
      return;
    }
    this.#notificationListeners.emit(method, params);
  }

  #protocolError(error: Error, line?: string): void {
    this.#options.onProtocolError?.(error, line);
  }

  #send(p: Pending): void {
    const conn = this.#conn;
    const transport = conn?.transport;
    if (!conn || !transport || this.#state !== 'ready') {
      this.#queue.push(p);
      return;
    }
    const id = ++this.#nextId;
    p.id = id;
    this.#inflight.set(id, p);
    const text = JSON.stringify({ jsonrpc: '2.0', id, method: p.method, params: p.params });
    const fail = (error: unknown) => {
      if (this.#inflight.get(id) !== p) return;
      this.#inflight.delete(id);
      p.cleanup();
      p.reject(new ConnectionError('closed', `portd: could not write ${p.method} to the sidecar: ${errorMessage(error)}`, { cause: error }));
    };
    try {
      const sent = transport.send(text);
      if (sent instanceof Promise) sent.catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  // ------------------------------------------------------------ leases

  #setLease(service: string, port: number | undefined, cause: LeaseChange['cause'], onlyKnown = false): void {
    const old = this.#leases.get(service);
    if (onlyKnown && old === undefined) return;
    if (old === port) return;
    if (port === undefined) this.#leases.delete(service);
    else this.#leases.set(service, port);
    this.#leaseListeners.emit({ service, oldPort: old, newPort: port, cause });
  }

  #observe(method: MethodName, params: object, result: unknown): void {
    const service = (params as { service_name?: unknown }).service_name;
    if (typeof service !== 'string') return;
    if (method === 'allocate_port' && typeof result === 'number') {
      const cause = (params as { [RECONNECT]?: true })[RECONNECT] ? 'reconnect' : 'allocate';
      this.#setLease(service, result, cause);
    } else if (method === 'handle_port_conflict' && typeof result === 'number') {
      this.#setLease(service, result, 'conflict');
    } else if (method === 'release_port') {
      this.#setLease(service, undefined, 'release');
    }
  }

  /**
   * Take again the leases this client held (after a reconnect): `allocate_port` for each, asking
   * for its old port. Leases whose port moved are reported through {@link onLeaseChange} with
   * cause `reconnect`. Resolves with the moves.
   *
   * @example
   * ```ts
   * await client.connect();
   * const moved = await client.reacquireLeases();
   * ```
   */
  async reacquireLeases(options?: CallOptions): Promise<LeaseChange[]> {
    const moved: LeaseChange[] = [];
    const off = this.onLeaseChange((c) => {
      if (c.cause === 'reconnect') moved.push(c);
    });
    try {
      await Promise.all(
        [...this.#leases].map(([service, port]) => {
          const params = { service_name: service, preferred_port: port };
          Object.defineProperty(params, RECONNECT, { value: true, enumerable: false });
          return this.call('allocate_port', params, options);
        }),
      );
    } finally {
      off();
    }
    return moved;
  }

  // ------------------------------------------------------------------ calls

  /**
   * Call a method by its wire name with its wire params (snake_case), typed from the schema.
   *
   * @example
   * ```ts
   * const port = await client.call('allocate_port', { service_name: 'vite', preferred_port: 5173 });
   * const stats = await client.call('get_stats');
   * ```
   */
  call<M extends MethodName>(method: M, ...args: CallArgs<M>): Promise<ResultOf<M>> {
    const [params, options] = args as [ParamsOf<M> | undefined, CallOptions | undefined];
    return this.#request(method, params ?? {}, options ?? {}, false) as Promise<ResultOf<M>>;
  }

  #request(method: MethodName, params: object, options: CallOptions, internal: boolean): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (!internal) {
        const refusal = this.#refusal();
        if (refusal) {
          reject(withMethod(refusal, method));
          return;
        }
      }
      const timeoutMs = options.timeoutMs ?? this.#options.defaultTimeoutMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onAbort: (() => void) | undefined;
      const p: Pending = {
        method,
        params,
        resolve,
        reject,
        id: undefined,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          if (onAbort) signal?.removeEventListener('abort', onAbort);
        },
      };
      const forget = () => {
        const i = this.#queue.indexOf(p);
        if (i !== -1) this.#queue.splice(i, 1);
        if (p.id !== undefined && this.#inflight.get(p.id) === p) this.#inflight.delete(p.id);
        p.cleanup();
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          forget();
          const waiting = p.id === undefined ? ` (still waiting for the sidecar to be ${this.#state === 'reconnecting' ? 'restarted' : 'ready'})` : '';
          reject(new ConnectionError('timeout', `portd: ${method} got no answer within ${timeoutMs} ms${waiting}`));
        }, timeoutMs);
      }
      if (signal) {
        onAbort = () => {
          forget();
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.#send(p);
    });
  }

  #refusal(): ConnectionError | undefined {
    if (this.#closing || this.#state === 'closed') return new ConnectionError('closed', 'portd: the client is closed');
    if (this.#state === 'disconnected') return new ConnectionError('closed', 'portd: the sidecar is not running');
    if (this.#state === 'idle') {
      return new ConnectionError('closed', 'portd: not connected — no transport configured (pass one to new PortdClient(…) or configurePortd({ transport }))');
    }
    return undefined;
  }

  // ------------------------------------------------------ one method per RPC

  /**
   * `init_port_manager`: merge the fields given into the config in force; resolves with it.
   *
   * @example
   * ```ts
   * const config = await client.initPortManager({ preferred_port: 5173, port_range: [5173, 5199] });
   * ```
   */
  initPortManager(config?: PortConfigUpdate, options?: CallOptions): Promise<PortConfig> {
    return this.call('init_port_manager', config ? { config } : {}, options);
  }

  /**
   * `find_available_port`: a port free now (nothing is leased).
   *
   * @example
   * ```ts
   * const port = await client.findAvailablePort(3000, [3000, 3999]);
   * ```
   */
  findAvailablePort(preferred?: number, range?: [number, number], options?: CallOptions): Promise<number> {
    return this.call(
      'find_available_port',
      { ...(preferred !== undefined ? { preferred } : {}), ...(range ? { range } : {}) },
      options,
    );
  }

  /**
   * `allocate_port`: lease a port to a service (the same port again while the lease lives).
   *
   * @example
   * ```ts
   * const port = await client.allocatePort('vite', 5173);
   * ```
   */
  allocatePort(serviceName: string, preferredPort?: number, options?: CallOptions): Promise<number> {
    return this.call(
      'allocate_port',
      { service_name: serviceName, ...(preferredPort !== undefined ? { preferred_port: preferredPort } : {}) },
      options,
    );
  }

  /**
   * `release_port`: end a service's lease (releasing twice is fine).
   *
   * @example
   * ```ts
   * await client.releasePort('vite');
   * ```
   */
  releasePort(serviceName: string, options?: CallOptions): Promise<null> {
    return this.call('release_port', { service_name: serviceName }, options);
  }

  /**
   * `is_port_available`: free on IPv4 and IPv6, all interfaces (or `host` only), and not leased.
   *
   * @example
   * ```ts
   * if (await client.isPortAvailable(1421)) console.log('1421 is free');
   * ```
   */
  isPortAvailable(port: number, host?: string, options?: CallOptions): Promise<boolean> {
    return this.call('is_port_available', { port, ...(host !== undefined ? { host } : {}) }, options);
  }

  /**
   * `port_health_check`: the service's port accepts connections from its rightful holder.
   *
   * @example
   * ```ts
   * const up = await client.portHealthCheck('vite');
   * ```
   */
  portHealthCheck(serviceName: string, options?: CallOptions): Promise<boolean> {
    return this.call('port_health_check', { service_name: serviceName }, options);
  }

  /**
   * `check_port_conflicts`: the services whose port someone else holds.
   *
   * @example
   * ```ts
   * const inConflict = await client.checkPortConflicts(); // ['vite']
   * ```
   */
  checkPortConflicts(options?: CallOptions): Promise<string[]> {
    return this.call('check_port_conflicts', {}, options);
  }

  /**
   * `handle_port_conflict`: move the service to a new port (a `PortChanged` event follows).
   *
   * @example
   * ```ts
   * const newPort = await client.handlePortConflict('vite');
   * ```
   */
  handlePortConflict(serviceName: string, options?: CallOptions): Promise<number> {
    return this.call('handle_port_conflict', { service_name: serviceName }, options);
  }

  /**
   * `get_port_info`: a service's lease ({@link UnknownServiceError} when it has none).
   *
   * @example
   * ```ts
   * const { port, state } = await client.getPortInfo('vite');
   * ```
   */
  getPortInfo(serviceName: string, options?: CallOptions): Promise<PortInfo> {
    return this.call('get_port_info', { service_name: serviceName }, options);
  }

  /**
   * `get_port_stats`: this app's leases by service.
   *
   * @example
   * ```ts
   * const stats = await client.getPortStats(); // { vite: { port: 1421, state: 'leased', … } }
   * ```
   */
  getPortStats(options?: CallOptions): Promise<ResultOf<'get_port_stats'>> {
    return this.call('get_port_stats', {}, options);
  }

  /**
   * `perform_health_check`: one system health check (port manager, registry, frontend, app,
   * resources, network).
   *
   * @example
   * ```ts
   * const { status, components } = await client.performHealthCheck();
   * ```
   */
  performHealthCheck(options?: CallOptions): Promise<SystemHealthStatus> {
    return this.call('perform_health_check', {}, options);
  }

  /**
   * `get_port_owner`: who listens on a port (and the lease naming it), or `null`.
   *
   * @example
   * ```ts
   * const owner = await client.getPortOwner(5173); // { pid, name, cmdline, lease, … } | null
   * ```
   */
  getPortOwner(port: number, options?: CallOptions): Promise<PortOwner | null> {
    return this.call('get_port_owner', { port }, options);
  }

  /**
   * `attach_process`: that pid is a rightful holder of the service's port (e.g. the dev server
   * the app started).
   *
   * @example
   * ```ts
   * await client.attachProcess('vite', devServer.pid);
   * ```
   */
  attachProcess(serviceName: string, pid: number, options?: CallOptions): Promise<null> {
    return this.call('attach_process', { service_name: serviceName, pid }, options);
  }

  /**
   * `reclaim_orphan`: end the recorded orphan listening on the port (same user only).
   *
   * @example
   * ```ts
   * const ended = await client.reclaimOrphan(1421);
   * ```
   */
  reclaimOrphan(port: number, options?: CallOptions): Promise<PortOwner> {
    return this.call('reclaim_orphan', { port }, options);
  }

  /**
   * `get_stats`: the sidecar's counters.
   *
   * @example
   * ```ts
   * const { allocations, uptime } = await client.getStats();
   * ```
   */
  getStats(options?: CallOptions): Promise<Stats> {
    return this.call('get_stats', {}, options);
  }

  /**
   * `shutdown`: the sidecar releases its leases and exits. Prefer {@link PortdClient.close}, which
   * also waits for the exit.
   *
   * @example
   * ```ts
   * await client.shutdown();
   * ```
   */
  shutdown(options?: CallOptions): Promise<null> {
    return this.call('shutdown', {}, options);
  }

  /**
   * `load_port_plan`: load a port plan (TOML); allocation then tries each service's planned port
   * first. Rejects with `InvalidPortPlanError` (-32005) when the file is unreadable or has errors.
   *
   * @example
   * ```ts
   * const plan = await client.loadPortPlan('ports.toml');
   * console.log(Object.keys(plan.categories), plan.warnings);
   * ```
   */
  loadPortPlan(path: string, options?: CallOptions): Promise<PortPlanSummary> {
    return this.call('load_port_plan', { path }, options);
  }

  /**
   * `check_port_plan`: check a plan (default: the loaded one) for clashes and risky ports; each
   * finding has its severity, code, message, file and line.
   *
   * @example
   * ```ts
   * const { errors, findings } = await client.checkPortPlan('ports.toml');
   * for (const f of findings) console.log(`${f.path}:${f.line ?? '?'} ${f.severity} ${f.message}`);
   * ```
   */
  checkPortPlan(path?: string, options?: CallOptions): Promise<PortPlanSummary> {
    return this.call('check_port_plan', path === undefined ? {} : { path }, options);
  }

  /**
   * `next_plan_port`: the next port of a category that the loaded plan leaves unused and that
   * is free now (nothing is leased).
   *
   * @example
   * ```ts
   * const port = await client.nextPlanPort('http'); // e.g. 8012
   * ```
   */
  nextPlanPort(category: string, options?: CallOptions): Promise<number> {
    return this.call('next_plan_port', { category }, options);
  }

  /**
   * `resolve_service`: where another app's service is, from the registry every sidecar shares:
   * every lease of it that can answer, the one to use first (live on this host, then other
   * hosts', then orphans; the newest first). Connect to `address`:`port`. Rejects with
   * {@link UnknownServiceError} when none can answer.
   *
   * @example
   * ```ts
   * const [api] = await client.resolveService('chat', 'api');
   * const res = await fetch(`http://${api.address}:${api.port}/health`);
   * ```
   */
  resolveService(appId: string, serviceName: string, options?: CallOptions): Promise<ServiceLocation[]> {
    return this.call('resolve_service', { app_id: appId, service_name: serviceName }, options);
  }

  /**
   * `watch_service`: where another app's service is now (`[]`: nowhere yet), and from now on a
   * `port_event` ({@link onEvent}) of type `ServiceUp`, `ServiceMoved` or `ServiceDown`, with
   * `app_id`, `service`, `address` and `port`, whenever the location to use changes. A
   * respawned sidecar watches nothing: call it again after a reconnect.
   *
   * @example
   * ```ts
   * client.onEvent((e) => {
   *   if (e.type === 'ServiceMoved' && e.service === 'api') reconnectTo(e.address, e.port);
   * });
   * const [api] = await client.watchService('chat', 'api');
   * ```
   */
  watchService(appId: string, serviceName: string, options?: CallOptions): Promise<ServiceLocation[]> {
    return this.call('watch_service', { app_id: appId, service_name: serviceName }, options);
  }

  /**
   * `unwatch_service`: stop watching another app's service (unwatching twice is fine).
   *
   * @example
   * ```ts
   * await client.unwatchService('chat', 'api');
   * ```
   */
  unwatchService(appId: string, serviceName: string, options?: CallOptions): Promise<null> {
    return this.call('unwatch_service', { app_id: appId, service_name: serviceName }, options);
  }
}

/** Marks an `allocate_port` made by {@link PortdClient.reacquireLeases} (never sent on the wire). */
const RECONNECT = Symbol('portd.reconnect');

/** Run a transport operation, ignoring its failure (the process may be gone already). */
async function attempt(op: () => void | Promise<void>): Promise<void> {
  try {
    await op();
  } catch {
    // ignored
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function withMethod(error: ConnectionError, method: string): ConnectionError {
  const e = new ConnectionError(error.reason, `${error.message} (while calling ${method})`, { cause: error.cause });
  return e;
}

/** Re-exported for convenience: the shape of one component's result. */
export type { HealthCheckResult };
