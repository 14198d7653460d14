/**
 * `ConnectionResilienceService`: keeps a sidecar running — respawns a dead one with exponential
 * back-off and jitter, re-takes the leases, and keeps statistics.
 *
 * @module
 */
import type { ClientState, PortdClient } from '../client.js';
import { ConnectionError } from '../errors.js';
import { Listeners, Store } from '../internal/listeners.js';

/**
 * The seed's reconnection settings.
 *
 * @example
 * ```ts
 * const config: ReconnectionConfig = { ...DEFAULT_RECONNECTION_CONFIG, maxRetries: 5 };
 * ```
 */
export interface ReconnectionConfig {
  /** Attempts before giving up. Default 10. */
  maxRetries: number;
  /** Delay before the first attempt (ms). Default 1000. */
  initialDelay: number;
  /** Longest delay (ms). Default 30 000. */
  maxDelay: number;
  /** Each delay is the previous one times this. Default 2. */
  backoffFactor: number;
  /** Randomise each delay within [delay/2, delay], so many apps do not retry in step. Default true. */
  jitter: boolean;
}

/**
 * The seed's defaults: 10 retries, 1 s, 30 s, ×2, jitter on.
 *
 * @example
 * ```ts
 * new ConnectionResilienceService(client, { ...DEFAULT_RECONNECTION_CONFIG, initialDelay: 250 });
 * ```
 */
export const DEFAULT_RECONNECTION_CONFIG: Readonly<ReconnectionConfig> = Object.freeze({
  maxRetries: 10,
  initialDelay: 1000,
  maxDelay: 30_000,
  backoffFactor: 2,
  jitter: true,
});

/**
 * Options beyond the reconnection config.
 *
 * @example
 * ```ts
 * new ConnectionResilienceService(client, {}, { checkInterval: 5000, checkTimeout: 2000 });
 * ```
 */
export interface ResilienceOptions {
  /** How often {@link ConnectionResilienceService.startMonitoring} pings the sidecar (ms). Default 15 000; 0: never. */
  checkInterval?: number;
  /** How long a ping may take before the sidecar is deemed hung and restarted (ms). Default 5000. */
  checkTimeout?: number;
  /** The random source of the jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * The connection as the UI shows it.
 *
 * @example
 * ```ts
 * const state: ConnectionState = connectionResilienceService.getConnectionStats().state;
 * ```
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'failed' | 'closed';

/**
 * One attempt to (re)start the sidecar.
 *
 * @example
 * ```ts
 * const last: ConnectionAttempt | undefined = stats.recentAttempts.at(-1);
 * ```
 */
export interface ConnectionAttempt {
  /** When it started (Unix ms). */
  readonly at: number;
  /** 1 for the first retry after a loss, 2 for the next… */
  readonly attempt: number;
  readonly success: boolean;
  /** How long it took (ms). */
  readonly duration: number;
  readonly error?: string;
}

/**
 * The seed's connection statistics.
 *
 * @example
 * ```ts
 * const { state, reconnections, successRate } = connectionResilienceService.getConnectionStats();
 * ```
 */
export interface ConnectionStats {
  readonly state: ConnectionState;
  readonly isConnected: boolean;
  readonly isMonitoring: boolean;
  /** Reconnection attempts made. */
  readonly totalAttempts: number;
  readonly successfulAttempts: number;
  readonly failedAttempts: number;
  /** Failed attempts since the last success. */
  readonly consecutiveFailures: number;
  /** Times the sidecar was lost. */
  readonly disconnections: number;
  /** Times it was restarted successfully. */
  readonly reconnections: number;
  /** The delay before the next attempt, while one is scheduled (ms). */
  readonly nextDelay: number | null;
  /** When the next attempt is due (Unix ms). */
  readonly nextRetryAt: number | null;
  readonly lastConnectedAt: number | null;
  readonly lastDisconnectedAt: number | null;
  readonly lastError: string | null;
  /** Round trip of the last ping (ms). */
  readonly lastLatency: number | null;
  readonly averageLatency: number | null;
  /** successfulAttempts / totalAttempts (1 when none were needed). */
  readonly successRate: number;
  /** The running sidecar's pid and version. */
  readonly pid: number | null;
  readonly version: string | null;
  /** The last 20 attempts. */
  readonly recentAttempts: readonly ConnectionAttempt[];
}

/**
 * The seed's `ConnectionResilienceService`.
 *
 * While monitoring, a sidecar that dies (or stops answering pings) is respawned through the
 * client's transport factory after `initialDelay`, then `initialDelay × backoffFactor^n` (at most
 * `maxDelay`, with jitter), up to `maxRetries` attempts. Calls made meanwhile wait for the new
 * sidecar's `ready` (bounded by their own time-outs). After a respawn the leases the client held
 * are re-taken (asking for their old ports); if one moved, {@link onPortChange} listeners (and the
 * {@link PortDiscoveryService}'s) hear of it.
 *
 * @example
 * ```ts
 * import { ConnectionResilienceService, PortdClient } from 'portd';
 * import { nodeTransport } from 'portd/transports/node';
 *
 * const client = new PortdClient(nodeTransport({ command: 'portd' }));
 * const resilience = new ConnectionResilienceService(client, { maxRetries: 5 });
 * await resilience.startMonitoring();
 * resilience.addListener((s) => console.log(s.state, s.reconnections));
 * const ok = await resilience.checkConnection();
 * await resilience.forceReconnect();
 * console.log(resilience.getConnectionStats());
 * ```
 */
export class ConnectionResilienceService {
  readonly client: PortdClient;
  #config: ReconnectionConfig;
  readonly #checkInterval: number;
  readonly #checkTimeout: number;
  readonly #random: () => number;
  #monitoring = false;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retry = 0;
  #looping = false;
  #attempting: Promise<void> | undefined;
  #failed = false;
  #latencies: number[] = [];
  readonly #portChanges = new Listeners<[number, number, string]>();
  readonly #statsListeners = new Listeners<[ConnectionStats]>();
  readonly #store: Store<ConnectionStats>;

  constructor(client: PortdClient, config: Partial<ReconnectionConfig> = {}, options: ResilienceOptions = {}) {
    this.client = client;
    this.#config = { ...DEFAULT_RECONNECTION_CONFIG, ...config };
    this.#checkInterval = options.checkInterval ?? 15_000;
    this.#checkTimeout = options.checkTimeout ?? 5_000;
    this.#random = options.random ?? Math.random;
    this.#store = new Store<ConnectionStats>({
      state: 'idle',
      isConnected: false,
      isMonitoring: false,
      totalAttempts: 0,
      successfulAttempts: 0,
      failedAttempts: 0,
      consecutiveFailures: 0,
      disconnections: 0,
      reconnections: 0,
      nextDelay: null,
      nextRetryAt: null,
      lastConnectedAt: null,
      lastDisconnectedAt: null,
      lastError: null,
      lastLatency: null,
      averageLatency: null,
      successRate: 1,
      pid: null,
      version: null,
      recentAttempts: [],
    });
    this.#store.subscribe(() => this.#statsListeners.emit(this.#store.getSnapshot()));
    client.onStateChange((state, previous) => this.#onClientState(state, previous));
    client.onReady((ready) => {
      this.#failed = false;
      this.#store.update({ pid: ready.pid, version: ready.version, lastConnectedAt: Date.now() });
    });
    this.#syncState();
  }

  /** The reconnection config in force. */
  get config(): Readonly<ReconnectionConfig> {
    return this.#config;
  }

  /**
   * Change the reconnection config.
   *
   * @example
   * ```ts
   * connectionResilienceService.configure({ maxRetries: 3 });
   * ```
   */
  configure(config: Partial<ReconnectionConfig>): void {
    this.#config = { ...this.#config, ...config };
  }

  /**
   * The delay before retry number `retry` (0-based): `min(maxDelay, initialDelay ×
   * backoffFactor^retry)`, then, with jitter, a random value in [delay/2, delay].
   *
   * @example
   * ```ts
   * resilience.computeDelay(0); // 500..1000 with the defaults
   * resilience.computeDelay(5); // 16000..32000 → capped: 15000..30000
   * ```
   */
  computeDelay(retry: number): number {
    const { initialDelay, backoffFactor, maxDelay, jitter } = this.#config;
    const base = Math.min(maxDelay, initialDelay * backoffFactor ** Math.max(0, retry));
    if (!jitter) return Math.round(base);
    return Math.round(base / 2 + this.#random() * (base / 2));
  }

  // ------------------------------------------------------------------ store

  /**
   * Subscribe to statistics changes (for `useSyncExternalStore`).
   *
   * @example
   * ```ts
   * const off = resilience.subscribe(() => console.log(resilience.getConnectionStats().state));
   * ```
   */
  readonly subscribe = (listener: () => void): (() => void) => this.#store.subscribe(listener);

  /**
   * The statistics snapshot (the same object until something changes).
   *
   * @example
   * ```ts
   * const stats = resilience.getSnapshot();
   * ```
   */
  readonly getSnapshot = (): ConnectionStats => this.#store.getSnapshot();

  /**
   * The connection statistics.
   *
   * @example
   * ```ts
   * const { state, totalAttempts, lastError } = resilience.getConnectionStats();
   * ```
   */
  getConnectionStats(): ConnectionStats {
    return this.#store.getSnapshot();
  }

  /**
   * Listen to statistics changes. Returns the unsubscribe function.
   *
   * @example
   * ```ts
   * const off = resilience.addListener((stats) => console.log(stats.state));
   * ```
   */
  addListener(listener: (stats: ConnectionStats) => void): () => void {
    return this.#statsListeners.add(listener);
  }

  /**
   * Listen to ports that moved when leases were re-taken after a respawn.
   *
   * @example
   * ```ts
   * resilience.onPortChange((newPort, oldPort, service) => console.log(service, oldPort, '->', newPort));
   * ```
   */
  onPortChange(listener: (newPort: number, oldPort: number, service: string) => void): () => void {
    return this.#portChanges.add(listener);
  }

  // -------------------------------------------------------------- monitoring

  /**
   * Start watching: a lost sidecar is respawned, and the sidecar is pinged every
   * `checkInterval` ms. Resolves after a first {@link checkConnection}.
   *
   * @example
   * ```ts
   * await connectionResilienceService.startMonitoring();
   * ```
   */
  async startMonitoring(): Promise<void> {
    if (!this.#monitoring) {
      this.#monitoring = true;
      this.client.supervised = true;
      if (this.#checkInterval > 0) {
        this.#pingTimer = setInterval(() => {
          void this.checkConnection();
        }, this.#checkInterval);
      }
      this.#store.update({ isMonitoring: true });
      const state = this.client.state;
      if ((state === 'disconnected' || state === 'reconnecting') && this.client.canConnect) this.#startLoop();
    }
    if (this.client.state === 'connecting') await this.client.ready.catch(() => undefined);
    await this.checkConnection();
  }

  /**
   * Stop watching (a reconnect in progress is abandoned; calls waiting for it fail).
   *
   * @example
   * ```ts
   * connectionResilienceService.stopMonitoring();
   * ```
   */
  stopMonitoring(): void {
    this.#monitoring = false;
    this.client.supervised = false;
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
    this.#cancelRetry();
    this.#looping = false;
    if (this.client.state === 'reconnecting') this.client.abandon();
    this.#store.update({ isMonitoring: false });
    this.#syncState();
  }

  /**
   * Whether the sidecar answers now (a `get_stats` round trip within `checkTimeout`). While
   * monitoring, a sidecar that does not answer is killed and respawned.
   *
   * @example
   * ```ts
   * if (!(await connectionResilienceService.checkConnection())) console.warn('portd is down');
   * ```
   */
  async checkConnection(): Promise<boolean> {
    if (this.client.state !== 'ready') return false;
    const started = Date.now();
    try {
      await this.client.getStats({ timeoutMs: this.#checkTimeout });
      const latency = Date.now() - started;
      this.#latencies = [...this.#latencies.slice(-19), latency];
      const avg = this.#latencies.reduce((a, b) => a + b, 0) / this.#latencies.length;
      this.#store.update({ lastLatency: latency, averageLatency: Math.round(avg * 10) / 10 });
      return true;
    } catch (error) {
      this.#store.update({ lastError: errorMessage(error) });
      if (this.#monitoring && error instanceof ConnectionError && error.reason === 'timeout' && this.client.state === 'ready') {
        await this.client.kill(); // hung: the close handler starts the reconnect loop
      }
      return false;
    }
  }

  /**
   * Respawn the sidecar now (killing the running one), re-take the leases, and resolve when it is
   * ready. Rejects if that attempt fails (while monitoring, retries then go on with back-off).
   *
   * @example
   * ```ts
   * await connectionResilienceService.forceReconnect();
   * ```
   */
  async forceReconnect(): Promise<void> {
    this.#cancelRetry();
    this.#retry = 0;
    this.#failed = false;
    if (this.#attempting) await this.#attempting.catch(() => undefined);
    this.#looping = this.#monitoring;
    try {
      await this.#attempt();
    } catch (error) {
      if (this.#monitoring) this.#scheduleNext();
      else this.#looping = false;
      throw error;
    }
  }

  // --------------------------------------------------------------- internals

  #onClientState(state: ClientState, previous: ClientState): void {
    if (state === 'reconnecting' && previous === 'ready') {
      this.#store.update({ disconnections: this.#store.getSnapshot().disconnections + 1, lastDisconnectedAt: Date.now() });
    }
    if (state === 'reconnecting' && this.#monitoring && !this.#looping) this.#startLoop();
    this.#syncState();
  }

  #syncState(): void {
    const s = this.client.state;
    let state: ConnectionState;
    switch (s) {
      case 'ready':
        state = 'connected';
        break;
      case 'connecting':
        state = this.#looping ? 'reconnecting' : 'connecting';
        break;
      case 'disconnected':
        state = this.#failed ? 'failed' : 'disconnected';
        break;
      default:
        state = s;
    }
    this.#store.update({ state, isConnected: s === 'ready' });
  }

  #startLoop(): void {
    this.#looping = true;
    this.#retry = 0;
    this.#scheduleNext();
  }

  #scheduleNext(): void {
    this.#cancelRetry();
    if (this.#retry >= this.#config.maxRetries) {
      this.#giveUp();
      return;
    }
    const delay = this.computeDelay(this.#retry);
    this.#store.update({ nextDelay: delay, nextRetryAt: Date.now() + delay });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#attempt().catch(() => {
        if (this.#looping) this.#scheduleNext();
      });
    }, delay);
    this.#syncState();
  }

  #cancelRetry(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#store.update({ nextDelay: null, nextRetryAt: null });
  }

  #giveUp(): void {
    this.#looping = false;
    this.#failed = true;
    const attempts = this.#retry;
    const error = new ConnectionError('spawn-failed', `portd: gave up restarting the sidecar after ${attempts} attempt(s): ${this.#store.getSnapshot().lastError ?? 'unknown error'}`);
    this.#store.update({ lastError: error.message });
    this.client.abandon(error);
    this.#syncState();
  }

  #attempt(): Promise<void> {
    const run = async () => {
      this.#retry += 1;
      const attempt = this.#retry;
      const at = Date.now();
      const s = this.#store.getSnapshot();
      this.#store.update({ totalAttempts: s.totalAttempts + 1, nextDelay: null, nextRetryAt: null });
      this.#syncState();
      try {
        await this.client.connect();
      } catch (error) {
        const t = this.#store.getSnapshot();
        const failedAttempts = t.failedAttempts + 1;
        this.#store.update({
          failedAttempts,
          consecutiveFailures: t.consecutiveFailures + 1,
          lastError: errorMessage(error),
          successRate: t.successfulAttempts / t.totalAttempts,
          recentAttempts: [...t.recentAttempts.slice(-19), { at, attempt, success: false, duration: Date.now() - at, error: errorMessage(error) }],
        });
        throw error;
      }
      const t = this.#store.getSnapshot();
      this.#store.update({
        successfulAttempts: t.successfulAttempts + 1,
        reconnections: t.reconnections + 1,
        consecutiveFailures: 0,
        successRate: (t.successfulAttempts + 1) / t.totalAttempts,
        recentAttempts: [...t.recentAttempts.slice(-19), { at, attempt, success: true, duration: Date.now() - at }],
      });
      this.#retry = 0;
      this.#looping = false;
      this.#syncState();
      try {
        const moved = await this.client.reacquireLeases();
        for (const m of moved) {
          if (m.oldPort !== undefined && m.newPort !== undefined) this.#portChanges.emit(m.newPort, m.oldPort, m.service);
        }
      } catch (error) {
        this.#store.update({ lastError: `re-taking leases: ${errorMessage(error)}` });
      }
    };
    const p = run().finally(() => {
      if (this.#attempting === p) this.#attempting = undefined;
    });
    this.#attempting = p;
    return p;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
