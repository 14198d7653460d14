import { useContext, useEffect, useMemo, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import { PortdContext, usePortd } from './context.js';
import { usePortDiscovery, type UsePortDiscoveryResult } from './usePortDiscovery.js';

/**
 * Props of {@link PortDiscoveryProvider}.
 *
 * @example
 * ```tsx
 * <PortDiscoveryProvider healthCheckInterval={10_000}>{children}</PortDiscoveryProvider>
 * ```
 */
export interface PortDiscoveryProviderProps {
  children?: ReactNode;
  /** The instance to provide. Default: the default one (see `configurePortd`). */
  portd?: Portd;
  /** On mount: monitor the connection, initialise, start health checks. Default true. */
  autoStart?: boolean;
  /** Health check period (ms); 0: none. Default 30 000, the seed's. */
  healthCheckInterval?: number;
}

/**
 * Provides a {@link Portd} instance to the hooks and components below, and starts it on mount:
 * connection monitoring (respawn on crash), initialisation (config, the frontend's port), and
 * periodic health checks. Stops monitoring and checks on unmount (the sidecar keeps running;
 * `portd.close()` stops it).
 *
 * @example
 * ```tsx
 * import { PortDiscoveryProvider, HealthCheck, ConnectionStatus } from 'portd/react';
 *
 * function App() {
 *   return (
 *     <PortDiscoveryProvider>
 *       <div>
 *         <HealthCheck showDetails={true} />
 *         <ConnectionStatus showDetails={true} />
 *       </div>
 *     </PortDiscoveryProvider>
 *   );
 * }
 * ```
 */
export function PortDiscoveryProvider({
  children,
  portd: explicit,
  autoStart = true,
  healthCheckInterval = 30_000,
}: PortDiscoveryProviderProps): ReactNode {
  const portd = usePortd(explicit);
  const value = useMemo(() => ({ portd }), [portd]);

  useEffect(() => {
    if (!autoStart) return;
    void portd.resilience.startMonitoring().catch(() => undefined);
    void portd.portDiscovery.initialize().catch(() => undefined);
    if (healthCheckInterval > 0) portd.healthCheck.startHealthCheck(healthCheckInterval);
    return () => {
      portd.healthCheck.stopHealthCheck();
      portd.resilience.stopMonitoring();
    };
  }, [portd, autoStart, healthCheckInterval]);

  return <PortdContext.Provider value={value}>{children}</PortdContext.Provider>;
}

/**
 * {@link usePortDiscovery} for the provider's instance; throws a clear error outside a
 * `<PortDiscoveryProvider>`.
 *
 * @example
 * ```tsx
 * function Port() {
 *   const { currentPort } = usePortDiscoveryContext();
 *   return <span>{currentPort}</span>;
 * }
 * ```
 */
export function usePortDiscoveryContext(): UsePortDiscoveryResult {
  const ctx = useContext(PortdContext);
  if (!ctx) {
    throw new Error(
      'usePortDiscoveryContext() must be used inside a <PortDiscoveryProvider>: wrap this component (or the app) in <PortDiscoveryProvider>…</PortDiscoveryProvider>.',
    );
  }
  return usePortDiscovery({ portd: ctx.portd, autoStart: false });
}
