/**
 * `portd/react`: the seed's hook, provider and components, thin over the core services
 * (`useSyncExternalStore`). React is a peer dependency; the core (`portd`) imports none of this.
 *
 * @example
 * ```tsx
 * import { configurePortd } from 'portd';
 * import { tauriTransport } from 'portd/transports/tauri';
 * import { PortDiscoveryProvider, HealthCheck, ConnectionStatus, usePortDiscovery } from 'portd/react';
 *
 * configurePortd({ transport: tauriTransport() });
 * ```
 *
 * @module
 */
export { usePortd } from './context.js';
export { usePortDiscovery, type UsePortDiscoveryOptions, type UsePortDiscoveryResult } from './usePortDiscovery.js';
export { PortDiscoveryProvider, usePortDiscoveryContext, type PortDiscoveryProviderProps } from './PortDiscoveryProvider.js';
export { HealthCheck, type HealthCheckProps } from './HealthCheck.js';
export { ConnectionStatus, type ConnectionStatusProps } from './ConnectionStatus.js';
