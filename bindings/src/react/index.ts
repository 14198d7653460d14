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
 * import 'portd/react/styles.css'; // optional: the components' default look
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
export { PortTable, type PortTableProps } from './PortTable.js';
export {
  usePortStats,
  type PortRow,
  type PortStats,
  type UsePortStatsOptions,
  type WatchedPort,
} from './usePortStats.js';
export { EventLog, usePortEvents, type EventLogProps, type UsePortEventsOptions } from './EventLog.js';
export {
  HealthLatencyChart,
  useHealthLatency,
  type HealthLatencyChartProps,
  type LatencySample,
  type UseHealthLatencyOptions,
} from './HealthLatencyChart.js';
export { cx, describePortEvent, formatTime } from './format.js';
