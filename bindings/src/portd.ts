/**
 * `Portd`: one sidecar with its client and the three services, and the default instance behind
 * the seed's singletons (`portDiscoveryService`, `healthCheckService`,
 * `connectionResilienceService`).
 *
 * @module
 */
import { PortdClient, type PortdClientOptions } from './client.js';
import { ConnectionResilienceService, type ReconnectionConfig, type ResilienceOptions } from './services/connectionResilience.js';
import { HealthCheckService } from './services/healthCheck.js';
import { PortDiscoveryService, type PortDiscoveryOptions } from './services/portDiscovery.js';
import type { Transport, TransportFactory } from './transport.js';

/**
 * Options of a {@link Portd}.
 *
 * @example
 * ```ts
 * const options: PortdOptions = {
 *   transport: tauriTransport(),
 *   serviceName: 'frontend',
 *   config: { preferred_port: 1421, port_range: [1421, 1500] },
 *   reconnection: { maxRetries: 10 },
 * };
 * ```
 */
export interface PortdOptions extends PortDiscoveryOptions {
  /** How to start the sidecar (a factory, so that it can be restarted). */
  transport?: TransportFactory | Transport;
  /** Options of the {@link PortdClient}. */
  client?: PortdClientOptions;
  /** The seed's reconnection config (defaults: 10, 1000, 30000, 2, jitter). */
  reconnection?: Partial<ReconnectionConfig>;
  /** Ping interval, ping time-out, jitter source. */
  resilience?: ResilienceOptions;
}

/**
 * One sidecar, its client and the seed's three services, wired together.
 *
 * @example
 * ```ts
 * import { Portd } from 'portd';
 * import { nodeTransport } from 'portd/transports/node';
 *
 * const portd = new Portd({ transport: nodeTransport({ command: '/opt/app/portd' }), serviceName: 'vite' });
 * await portd.start();                       // initialise, monitor the connection
 * console.log(portd.portDiscovery.getCurrentPort());
 * await portd.close();
 * ```
 */
export class Portd {
  readonly client: PortdClient;
  readonly portDiscovery: PortDiscoveryService;
  readonly healthCheck: HealthCheckService;
  readonly resilience: ConnectionResilienceService;

  constructor(options: PortdOptions = {}) {
    this.client = new PortdClient(options.transport, options.client);
    this.portDiscovery = new PortDiscoveryService(this.client, options);
    this.healthCheck = new HealthCheckService(this.client);
    this.resilience = new ConnectionResilienceService(this.client, options.reconnection, options.resilience);
  }

  /**
   * Start everything: monitor the connection (respawn on crash) and initialise port discovery.
   *
   * @example
   * ```ts
   * await portd.start();
   * ```
   */
  async start(): Promise<void> {
    await this.resilience.startMonitoring();
    await this.portDiscovery.initialize();
  }

  /**
   * Stop monitoring and health checks, and close the sidecar (it releases this app's leases).
   *
   * @example
   * ```ts
   * await portd.close();
   * ```
   */
  async close(): Promise<void> {
    this.healthCheck.stopHealthCheck();
    this.resilience.stopMonitoring();
    await this.client.close();
  }
}

/**
 * The default {@link Portd}, behind the seed's singletons. It has no transport until
 * {@link configurePortd} gives it one.
 */
const defaultPortd = new Portd();

/**
 * Give the default instance its transport (and options), and start its sidecar. Call it once,
 * at start-up; the seed's singletons and the React hooks (outside a provider with its own
 * instance) then work as written.
 *
 * @example
 * ```ts
 * import { configurePortd } from 'portd';
 * import { tauriTransport } from 'portd/transports/tauri';
 *
 * configurePortd({ transport: tauriTransport() }); // Command.sidecar('binaries/portd', ['serve'])
 * ```
 */
export function configurePortd(options: PortdOptions): Portd {
  defaultPortd.portDiscovery.configure(options);
  if (options.reconnection) defaultPortd.resilience.configure(options.reconnection);
  if (options.transport !== undefined) {
    const t = options.transport;
    const factory: TransportFactory = typeof t === 'function' ? t : () => t;
    void defaultPortd.client.connect(factory).catch(() => undefined);
  }
  return defaultPortd;
}

/**
 * The default instance (configured or not).
 *
 * @example
 * ```ts
 * const { client } = getDefaultPortd();
 * ```
 */
export function getDefaultPortd(): Portd {
  return defaultPortd;
}

/**
 * The seed's `portDiscoveryService` singleton (of the default instance).
 *
 * @example
 * ```ts
 * import { portDiscoveryService } from 'portd';
 *
 * await portDiscoveryService.initialize();
 * const port = await portDiscoveryService.allocatePort('my-service');
 * const available = await portDiscoveryService.isPortAvailable(1421);
 * const newPort = await portDiscoveryService.handlePortConflict('my-service');
 * ```
 */
export const portDiscoveryService: PortDiscoveryService = defaultPortd.portDiscovery;

/**
 * The seed's `healthCheckService` singleton (of the default instance).
 *
 * @example
 * ```ts
 * import { healthCheckService } from 'portd';
 * healthCheckService.startHealthCheck(30_000);
 * ```
 */
export const healthCheckService: HealthCheckService = defaultPortd.healthCheck;

/**
 * The seed's `connectionResilienceService` singleton (of the default instance).
 *
 * @example
 * ```ts
 * import { connectionResilienceService } from 'portd';
 * await connectionResilienceService.startMonitoring();
 * ```
 */
export const connectionResilienceService: ConnectionResilienceService = defaultPortd.resilience;
