/**
 * `PortDiscoveryService`: the seed's port discovery service, over a {@link PortdClient}.
 *
 * @module
 */
import type { CallOptions, LeaseChange, PortdClient } from '../client.js';
import { Listeners, Store } from '../internal/listeners.js';
import type { PortConfig, PortConfigUpdate, PortEvent, PortInfo } from '../protocol.js';

/**
 * Options of a {@link PortDiscoveryService}.
 *
 * @example
 * ```ts
 * const discovery = new PortDiscoveryService(client, { serviceName: 'vite', config: { preferred_port: 5173 } });
 * ```
 */
export interface PortDiscoveryOptions {
  /** The service whose port is "the current port" (the app's frontend). Default `'frontend'`. */
  serviceName?: string;
  /** Sent with `init_port_manager` by {@link PortDiscoveryService.initialize}. */
  config?: PortConfigUpdate;
  /** Whether {@link PortDiscoveryService.initialize} allocates `serviceName`. Default true. */
  allocateOnInitialize?: boolean;
}

/**
 * What {@link PortDiscoveryService.getSnapshot} returns: immutable, replaced on each change
 * (for `useSyncExternalStore`).
 *
 * @example
 * ```ts
 * const { currentPort, isInitialized, ports } = discovery.getSnapshot();
 * ```
 */
export interface PortDiscoverySnapshot {
  /** The port of the default service, once allocated. */
  readonly currentPort: number | null;
  /** The default service's name. */
  readonly serviceName: string;
  /** Whether {@link PortDiscoveryService.initialize} has completed. */
  readonly isInitialized: boolean;
  /** Whether it is running now. */
  readonly isInitializing: boolean;
  /** The ports of the services allocated through this client. */
  readonly ports: Readonly<Record<string, number>>;
  /** The config in force, as `init_port_manager` answered. */
  readonly config: PortConfig | null;
  /** The last port event. */
  readonly lastEvent: PortEvent | null;
  /** The last error of `initialize`. */
  readonly error: Error | null;
}

/**
 * Called when a service's port moved (conflict resolved, or re-taken on another port after a
 * reconnect).
 *
 * @example
 * ```ts
 * const onChange: PortChangeListener = (newPort, oldPort, service) => console.log(service, oldPort, '->', newPort);
 * ```
 */
export type PortChangeListener = (newPort: number, oldPort: number, service: string) => void;

/**
 * Called on a `PortConflict` event (someone else listens on a service's port and `auto_resolve`
 * is off).
 *
 * @example
 * ```ts
 * const onConflict: PortConflictListener = (port, service) => console.warn(`${service}: ${port} is taken`);
 * ```
 */
export type PortConflictListener = (port: number, service: string) => void;

/**
 * The seed's `PortDiscoveryService`: allocate ports, check them, resolve conflicts, follow
 * events. Everything goes to the sidecar; this class keeps what the UI shows.
 *
 * @example
 * ```ts
 * import { PortDiscoveryService, PortdClient } from 'portd';
 * import { nodeTransport } from 'portd/transports/node';
 *
 * const discovery = new PortDiscoveryService(new PortdClient(nodeTransport({ command: 'portd' })));
 * discovery.onPortChange((newPort, oldPort) => console.log(`Port changed: ${oldPort} -> ${newPort}`));
 * await discovery.initialize();
 * const port = await discovery.allocatePort('my-service');
 * const available = await discovery.isPortAvailable(1421);
 * const newPort = await discovery.handlePortConflict('my-service');
 * ```
 */
export class PortDiscoveryService {
  readonly client: PortdClient;
  #options: Required<Omit<PortDiscoveryOptions, 'config'>> & { config: PortConfigUpdate | undefined };
  #initializing: Promise<void> | undefined;
  readonly #store: Store<PortDiscoverySnapshot>;
  readonly #events = new Listeners<[PortEvent]>();
  readonly #changes = new Listeners<[number, number, string]>();
  readonly #conflicts = new Listeners<[number, string]>();

  constructor(client: PortdClient, options: PortDiscoveryOptions = {}) {
    this.client = client;
    this.#options = {
      serviceName: options.serviceName ?? 'frontend',
      allocateOnInitialize: options.allocateOnInitialize ?? true,
      config: options.config,
    };
    this.#store = new Store<PortDiscoverySnapshot>({
      currentPort: null,
      serviceName: this.#options.serviceName,
      isInitialized: false,
      isInitializing: false,
      ports: {},
      config: null,
      lastEvent: null,
      error: null,
    });
    client.onEvent((event) => this.#onEvent(event));
    client.onLeaseChange((change) => this.#onLease(change));
  }

  /**
   * Change the options before {@link initialize} (used by `configurePortd`).
   *
   * @example
   * ```ts
   * portDiscoveryService.configure({ serviceName: 'vite' });
   * ```
   */
  configure(options: PortDiscoveryOptions): void {
    this.#options = {
      serviceName: options.serviceName ?? this.#options.serviceName,
      allocateOnInitialize: options.allocateOnInitialize ?? this.#options.allocateOnInitialize,
      config: options.config ?? this.#options.config,
    };
    const ports = this.#store.getSnapshot().ports;
    this.#store.update({ serviceName: this.#options.serviceName, currentPort: ports[this.#options.serviceName] ?? null });
  }

  /** The default service's name. */
  get serviceName(): string {
    return this.#options.serviceName;
  }

  // ------------------------------------------------------------------ store

  /**
   * Subscribe to snapshot changes (for `useSyncExternalStore`).
   *
   * @example
   * ```ts
   * const off = discovery.subscribe(() => render(discovery.getSnapshot()));
   * ```
   */
  readonly subscribe = (listener: () => void): (() => void) => this.#store.subscribe(listener);

  /**
   * The current snapshot (the same object until something changes).
   *
   * @example
   * ```ts
   * const { currentPort } = discovery.getSnapshot();
   * ```
   */
  readonly getSnapshot = (): PortDiscoverySnapshot => this.#store.getSnapshot();

  /**
   * The default service's port, once allocated.
   *
   * @example
   * ```ts
   * const port = discovery.getCurrentPort(); // 1421 | null
   * ```
   */
  getCurrentPort(): number | null {
    return this.#store.getSnapshot().currentPort;
  }

  /** Whether {@link initialize} has completed. */
  get isInitialized(): boolean {
    return this.#store.getSnapshot().isInitialized;
  }

  // ------------------------------------------------------------ listeners

  /**
   * Listen to every `port_event`. Returns the unsubscribe function.
   *
   * @example
   * ```ts
   * const off = discovery.addEventListener((e) => console.log(e.type));
   * ```
   */
  addEventListener(listener: (event: PortEvent) => void): () => void {
    return this.#events.add(listener);
  }

  /**
   * Stop listening.
   *
   * @example
   * ```ts
   * discovery.removeEventListener(listener);
   * ```
   */
  removeEventListener(listener: (event: PortEvent) => void): void {
    this.#events.delete(listener);
  }

  /**
   * Listen to port moves of any service this client leased (conflict resolution, reconnect).
   *
   * @example
   * ```ts
   * discovery.onPortChange((newPort, oldPort, service) => console.log(service, oldPort, '->', newPort));
   * ```
   */
  onPortChange(listener: PortChangeListener): () => void {
    return this.#changes.add(listener);
  }

  /**
   * Listen to `PortConflict` events.
   *
   * @example
   * ```ts
   * discovery.onPortConflict((port, service) => console.warn(`${port} for ${service} is taken`));
   * ```
   */
  onPortConflict(listener: PortConflictListener): () => void {
    return this.#conflicts.add(listener);
  }

  #onEvent(event: PortEvent): void {
    this.#store.update({ lastEvent: event });
    if (event.type === 'PortConflict' && event.service != null) {
      const port = event.port ?? event.old_port ?? this.#store.getSnapshot().ports[event.service];
      if (port != null) this.#conflicts.emit(port, event.service);
    }
    this.#events.emit(event);
  }

  #onLease(change: LeaseChange): void {
    const ports = { ...this.#store.getSnapshot().ports };
    if (change.newPort === undefined) delete ports[change.service];
    else ports[change.service] = change.newPort;
    const mine = change.service === this.#options.serviceName;
    this.#store.update(mine ? { ports, currentPort: change.newPort ?? null } : { ports });
    if (change.oldPort !== undefined && change.newPort !== undefined) {
      this.#changes.emit(change.newPort, change.oldPort, change.service);
    }
  }

  // -------------------------------------------------------------- methods

  /**
   * Initialise: wait for the sidecar, send the config (`init_port_manager`), and allocate the
   * default service's port. Safe to call again (it runs once; after a failure it runs again).
   *
   * @example
   * ```ts
   * await portDiscoveryService.initialize();
   * console.log(portDiscoveryService.getCurrentPort());
   * ```
   */
  initialize(options?: CallOptions): Promise<void> {
    if (this.#store.getSnapshot().isInitialized) return Promise.resolve();
    this.#initializing ??= this.#initialize(options).finally(() => {
      this.#initializing = undefined;
    });
    return this.#initializing;
  }

  async #initialize(options?: CallOptions): Promise<void> {
    this.#store.update({ isInitializing: true, error: null });
    try {
      const config = await this.client.initPortManager(this.#options.config, options);
      this.#store.update({ config });
      if (this.#options.allocateOnInitialize) {
        await this.client.allocatePort(this.#options.serviceName, undefined, options);
      }
      this.#store.update({ isInitialized: true, isInitializing: false });
    } catch (error) {
      this.#store.update({ isInitializing: false, error: error instanceof Error ? error : new Error(String(error)) });
      throw error;
    }
  }

  /**
   * Lease a port to a service (the same port again while the lease lives).
   *
   * @example
   * ```ts
   * const port = await portDiscoveryService.allocatePort('my-service');
   * ```
   */
  allocatePort(serviceName: string, preferredPort?: number, options?: CallOptions): Promise<number> {
    return this.client.allocatePort(serviceName, preferredPort, options);
  }

  /**
   * End a service's lease.
   *
   * @example
   * ```ts
   * await portDiscoveryService.releasePort('my-service');
   * ```
   */
  async releasePort(serviceName: string, options?: CallOptions): Promise<void> {
    await this.client.releasePort(serviceName, options);
  }

  /**
   * Whether a port is free (IPv4 and IPv6, all interfaces, not leased).
   *
   * @example
   * ```ts
   * const available = await portDiscoveryService.isPortAvailable(1421);
   * ```
   */
  isPortAvailable(port: number, options?: CallOptions): Promise<boolean> {
    return this.client.isPortAvailable(port, undefined, options);
  }

  /**
   * Move a service to a new port; resolves with it. {@link onPortChange} listeners hear of it
   * once (from the answer or the `PortChanged` event, whichever comes first).
   *
   * @example
   * ```ts
   * const newPort = await portDiscoveryService.handlePortConflict('my-service');
   * ```
   */
  handlePortConflict(serviceName: string = this.#options.serviceName, options?: CallOptions): Promise<number> {
    return this.client.handlePortConflict(serviceName, options);
  }

  /**
   * The services in conflict now.
   *
   * @example
   * ```ts
   * const conflicted = await portDiscoveryService.checkPortConflicts();
   * ```
   */
  checkPortConflicts(options?: CallOptions): Promise<string[]> {
    return this.client.checkPortConflicts(options);
  }

  /**
   * A service's lease.
   *
   * @example
   * ```ts
   * const info = await portDiscoveryService.getPortInfo('my-service');
   * ```
   */
  getPortInfo(serviceName: string, options?: CallOptions): Promise<PortInfo> {
    return this.client.getPortInfo(serviceName, options);
  }

  /**
   * Every lease of this app, by service.
   *
   * @example
   * ```ts
   * const stats = await portDiscoveryService.getPortStats();
   * for (const [service, info] of Object.entries(stats)) console.log(service, info?.port);
   * ```
   */
  getPortStats(options?: CallOptions): Promise<Record<string, PortInfo | undefined>> {
    return this.client.getPortStats(options);
  }
}
