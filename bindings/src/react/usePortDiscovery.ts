import { useCallback, useEffect, useRef, useSyncExternalStore } from 'react';
import type { Portd } from '../portd.js';
import type { HealthStatus, PortEvent, SystemHealthStatus } from '../protocol.js';
import type { ConnectionStats } from '../services/connectionResilience.js';
import type { HealthSnapshot } from '../services/healthCheck.js';
import type { PortDiscoverySnapshot } from '../services/portDiscovery.js';
import { usePortd } from './context.js';

/**
 * Options of {@link usePortDiscovery}, as in the seed.
 *
 * @example
 * ```tsx
 * usePortDiscovery({
 *   autoStart: true,
 *   onPortChange: (newPort, oldPort) => console.log(`Port changed: ${oldPort} -> ${newPort}`),
 *   onPortConflict: (port, service) => console.log(`Port conflict detected: ${port} for ${service}`),
 * });
 * ```
 */
export interface UsePortDiscoveryOptions {
  /** Initialise on mount (config, allocate the service's port, one health check). Default true. */
  autoStart?: boolean;
  /** The service's port moved (conflict resolved, or re-taken elsewhere after a reconnect). */
  onPortChange?: (newPort: number, oldPort: number) => void;
  /** A `PortConflict` event, for any service of this app. */
  onPortConflict?: (port: number, service: string) => void;
  /** The service whose port is `currentPort`. Default: the instance's (`'frontend'`). */
  serviceName?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

/**
 * What {@link usePortDiscovery} returns: the seed's five fields, and more.
 *
 * @example
 * ```tsx
 * const { currentPort, isInitialized, healthStatus } = usePortDiscovery();
 * ```
 */
export interface UsePortDiscoveryResult {
  /** The service's port, once allocated. */
  currentPort: number | null;
  isInitialized: boolean;
  isInitializing: boolean;
  /** The last health check's overall status (`unknown` before the first). */
  healthStatus: HealthStatus;
  /** The last health check in full. */
  health: SystemHealthStatus | null;
  /** The connection's statistics (state, reconnections…). */
  connection: ConnectionStats;
  /** Every port this app leased, by service. */
  ports: Readonly<Record<string, number>>;
  /** The last port event. */
  lastEvent: PortEvent | null;
  /** The last error of initialising. */
  error: Error | null;
  /** Move the service (default: this hook's) to a new port; resolves with it. */
  handlePortConflict: (serviceName?: string) => Promise<number>;
  /** Run a health check; resolves with its result (an `unhealthy` one if the sidecar is unreachable). */
  performHealthCheck: () => Promise<SystemHealthStatus>;
  /** Lease a port to another service. */
  allocatePort: (serviceName: string, preferredPort?: number) => Promise<number>;
  /** Whether a port is free. */
  isPortAvailable: (port: number) => Promise<boolean>;
  /** Initialise now (when `autoStart` is false). */
  initialize: () => Promise<void>;
  /** Restart the sidecar now. */
  reconnect: () => Promise<void>;
}

function useLatest<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  useEffect(() => {
    ref.current = value;
  });
  return ref;
}

/**
 * The seed's hook: the app's port, its health, and the actions, kept current through
 * `useSyncExternalStore` over the services. Uses the nearest `<PortDiscoveryProvider>`'s
 * instance, else the default one (give it a transport with `configurePortd`).
 *
 * @example
 * ```tsx
 * import { usePortDiscovery } from 'portd/react';
 *
 * function MyComponent() {
 *   const { currentPort, isInitialized, healthStatus, handlePortConflict, performHealthCheck } = usePortDiscovery({
 *     autoStart: true,
 *     onPortChange: (newPort, oldPort) => console.log(`Port changed: ${oldPort} -> ${newPort}`),
 *     onPortConflict: (port, service) => console.log(`Port conflict detected: ${port} for ${service}`),
 *   });
 *   return (
 *     <div>
 *       <p>Current Port: {currentPort}</p>
 *       <p>Status: {healthStatus}</p>
 *       <button onClick={() => performHealthCheck()}>Check Health</button>
 *     </div>
 *   );
 * }
 * ```
 */
export function usePortDiscovery(options: UsePortDiscoveryOptions = {}): UsePortDiscoveryResult {
  const portd = usePortd(options.portd);
  const { portDiscovery, healthCheck, resilience } = portd;
  const autoStart = options.autoStart ?? true;
  const serviceName = options.serviceName ?? portDiscovery.serviceName;

  const discovery: PortDiscoverySnapshot = useSyncExternalStore(
    portDiscovery.subscribe,
    portDiscovery.getSnapshot,
    portDiscovery.getSnapshot,
  );
  const health: HealthSnapshot = useSyncExternalStore(healthCheck.subscribe, healthCheck.getSnapshot, healthCheck.getSnapshot);
  const connection: ConnectionStats = useSyncExternalStore(resilience.subscribe, resilience.getSnapshot, resilience.getSnapshot);

  const onPortChange = useLatest(options.onPortChange);
  const onPortConflict = useLatest(options.onPortConflict);

  useEffect(() => {
    const offChange = portDiscovery.onPortChange((newPort, oldPort, service) => {
      if (service === serviceName) onPortChange.current?.(newPort, oldPort);
    });
    const offConflict = portDiscovery.onPortConflict((port, service) => onPortConflict.current?.(port, service));
    return () => {
      offChange();
      offConflict();
    };
  }, [portDiscovery, serviceName, onPortChange, onPortConflict]);

  useEffect(() => {
    if (!autoStart) return;
    void (async () => {
      await portDiscovery.initialize();
      if (serviceName !== portDiscovery.serviceName) await portDiscovery.allocatePort(serviceName);
      const h = healthCheck.getSnapshot();
      if (h.stats.totalChecks === 0 && !h.isChecking) await healthCheck.performHealthCheck();
    })().catch(() => undefined); // the error is in the snapshots
  }, [autoStart, portDiscovery, healthCheck, serviceName]);

  const handlePortConflict = useCallback(
    (service?: string) => portDiscovery.handlePortConflict(service ?? serviceName),
    [portDiscovery, serviceName],
  );
  const performHealthCheck = useCallback(
    () =>
      healthCheck.performHealthCheck().catch((error: unknown) => {
        const last = healthCheck.getLastHealthStatus();
        if (last) return last;
        throw error;
      }),
    [healthCheck],
  );
  const allocatePort = useCallback(
    (service: string, preferredPort?: number) => portDiscovery.allocatePort(service, preferredPort),
    [portDiscovery],
  );
  const isPortAvailable = useCallback((port: number) => portDiscovery.isPortAvailable(port), [portDiscovery]);
  const initialize = useCallback(() => portDiscovery.initialize(), [portDiscovery]);
  const reconnect = useCallback(() => resilience.forceReconnect(), [resilience]);

  const currentPort =
    discovery.ports[serviceName] ?? (serviceName === discovery.serviceName ? discovery.currentPort : null);

  return {
    currentPort,
    isInitialized: discovery.isInitialized,
    isInitializing: discovery.isInitializing,
    healthStatus: health.status,
    health: health.lastStatus,
    connection,
    ports: discovery.ports,
    lastEvent: discovery.lastEvent,
    error: discovery.error,
    handlePortConflict,
    performHealthCheck,
    allocatePort,
    isPortAvailable,
    initialize,
    reconnect,
  };
}
