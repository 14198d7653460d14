/**
 * `HealthCheckService`: the seed's health check service, over a {@link PortdClient}.
 *
 * @module
 */
import type { CallOptions, PortdClient } from '../client.js';
import { Listeners, Store } from '../internal/listeners.js';
import type { HealthStatus, SystemHealthStatus } from '../protocol.js';

/**
 * Counters of the checks this service ran.
 *
 * @example
 * ```ts
 * const { totalChecks, failedChecks } = healthCheckService.getHealthStats();
 * ```
 */
export interface HealthStats {
  /** Checks run (answered or not). */
  readonly totalChecks: number;
  /** Checks whose overall status was `healthy`. */
  readonly healthyChecks: number;
  /** Checks that were `unhealthy`, or got no answer. */
  readonly failedChecks: number;
  /** When the last check finished (Unix ms). */
  readonly lastCheckAt: number | null;
  /** Milliseconds the last check took, as the client saw it. */
  readonly lastLatency: number | null;
}

/**
 * What {@link HealthCheckService.getSnapshot} returns (for `useSyncExternalStore`).
 *
 * @example
 * ```ts
 * const { status, lastStatus, isChecking } = healthCheckService.getSnapshot();
 * ```
 */
export interface HealthSnapshot {
  /** The last overall status; `unknown` before the first check. */
  readonly status: HealthStatus;
  /** The last full result. */
  readonly lastStatus: SystemHealthStatus | null;
  /** Whether a check is running. */
  readonly isChecking: boolean;
  /** Whether periodic checks are on. */
  readonly isMonitoring: boolean;
  /** The last check's error (no answer from the sidecar). */
  readonly error: Error | null;
  readonly stats: HealthStats;
}

/**
 * The seed's `HealthCheckService`: run system health checks in the sidecar, once or every
 * `interval` ms, and tell listeners. A check that gets no answer is reported to listeners as an
 * `unhealthy` status with one component, `sidecar`.
 *
 * @example
 * ```ts
 * import { healthCheckService } from 'portd';
 *
 * const off = healthCheckService.addListener((s) => console.log('health:', s.status));
 * healthCheckService.startHealthCheck(30_000);
 * const now = await healthCheckService.performHealthCheck();
 * healthCheckService.stopHealthCheck();
 * off();
 * ```
 */
export class HealthCheckService {
  readonly client: PortdClient;
  readonly #listeners = new Listeners<[SystemHealthStatus]>();
  readonly #store = new Store<HealthSnapshot>({
    status: 'unknown',
    lastStatus: null,
    isChecking: false,
    isMonitoring: false,
    error: null,
    stats: { totalChecks: 0, healthyChecks: 0, failedChecks: 0, lastCheckAt: null, lastLatency: null },
  });
  #timer: ReturnType<typeof setInterval> | undefined;
  #running = 0;

  constructor(client: PortdClient) {
    this.client = client;
  }

  /**
   * Subscribe to snapshot changes (for `useSyncExternalStore`).
   *
   * @example
   * ```ts
   * const off = healthCheckService.subscribe(() => console.log(healthCheckService.getSnapshot().status));
   * ```
   */
  readonly subscribe = (listener: () => void): (() => void) => this.#store.subscribe(listener);

  /**
   * The current snapshot.
   *
   * @example
   * ```ts
   * const { status } = healthCheckService.getSnapshot();
   * ```
   */
  readonly getSnapshot = (): HealthSnapshot => this.#store.getSnapshot();

  /**
   * Run one check now.
   *
   * @example
   * ```ts
   * const { status, components } = await healthCheckService.performHealthCheck();
   * for (const c of components) console.log(c.component, c.status, c.message);
   * ```
   */
  async performHealthCheck(options?: CallOptions): Promise<SystemHealthStatus> {
    this.#running += 1;
    this.#store.update({ isChecking: true });
    const started = Date.now();
    try {
      const status = await this.client.performHealthCheck(options);
      this.#record(status, null, Date.now() - started);
      return status;
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      const now = Date.now();
      this.#record(
        {
          status: 'unhealthy',
          timestamp: now,
          components: [
            { component: 'sidecar', status: 'unhealthy', message: err.message, timestamp: now, latency: now - started },
          ],
        },
        err,
        now - started,
      );
      throw error;
    } finally {
      this.#running -= 1;
      if (this.#running === 0) this.#store.update({ isChecking: false });
    }
  }

  #record(status: SystemHealthStatus, error: Error | null, latency: number): void {
    const s = this.#store.getSnapshot().stats;
    this.#store.update({
      status: status.status,
      lastStatus: status,
      error,
      stats: {
        totalChecks: s.totalChecks + 1,
        healthyChecks: s.healthyChecks + (status.status === 'healthy' ? 1 : 0),
        failedChecks: s.failedChecks + (status.status === 'healthy' ? 0 : 1),
        lastCheckAt: Date.now(),
        lastLatency: latency,
      },
    });
    this.#listeners.emit(status);
  }

  /**
   * Check now and then every `interval` ms (default 30 000, the seed's), until
   * {@link stopHealthCheck}. Calling it again changes the interval.
   *
   * @example
   * ```ts
   * healthCheckService.startHealthCheck(10_000);
   * ```
   */
  startHealthCheck(interval = 30_000): void {
    this.stopHealthCheck();
    const run = () => {
      this.performHealthCheck().catch(() => undefined);
    };
    this.#timer = setInterval(run, Math.max(1, interval));
    this.#store.update({ isMonitoring: true });
    run();
  }

  /**
   * Stop the periodic checks.
   *
   * @example
   * ```ts
   * healthCheckService.stopHealthCheck();
   * ```
   */
  stopHealthCheck(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#store.update({ isMonitoring: false });
  }

  /**
   * Listen to each check's result. Returns the unsubscribe function.
   *
   * @example
   * ```ts
   * const off = healthCheckService.addListener((status) => console.log(status.status));
   * off();
   * ```
   */
  addListener(listener: (status: SystemHealthStatus) => void): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Stop listening.
   *
   * @example
   * ```ts
   * healthCheckService.removeListener(listener);
   * ```
   */
  removeListener(listener: (status: SystemHealthStatus) => void): void {
    this.#listeners.delete(listener);
  }

  /**
   * The last result, if any.
   *
   * @example
   * ```ts
   * const last = healthCheckService.getLastHealthStatus();
   * ```
   */
  getLastHealthStatus(): SystemHealthStatus | null {
    return this.#store.getSnapshot().lastStatus;
  }

  /**
   * Counters of the checks run.
   *
   * @example
   * ```ts
   * const { totalChecks, failedChecks } = healthCheckService.getHealthStats();
   * ```
   */
  getHealthStats(): HealthStats {
    return this.#store.getSnapshot().stats;
  }
}
