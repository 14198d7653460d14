/**
 * `portd`: the TypeScript side of the portd sidecar — a typed JSON-RPC client, the seed's
 * services and their singletons. No React and no runtime here: transports live in
 * `portd/transports/node` and `portd/transports/tauri`, React in `portd/react`.
 *
 * @example
 * ```ts
 * import { configurePortd, portDiscoveryService } from 'portd';
 * import { tauriTransport } from 'portd/transports/tauri';
 *
 * configurePortd({ transport: tauriTransport() });
 * await portDiscoveryService.initialize();
 * ```
 *
 * @module
 */
export {
  PortdClient,
  type CallArgs,
  type CallOptions,
  type ClientState,
  type LeaseChange,
  type PortdClientMethods,
  type PortdClientOptions,
} from './client.js';
export {
  ConnectionError,
  ERROR_CLASSES,
  InternalError,
  InvalidParamsError,
  InvalidPortPlanError,
  InvalidRequestError,
  MethodNotFoundError,
  NoPortAvailableError,
  ParseError,
  PermissionDeniedError,
  PortdError,
  RegistryUnavailableError,
  ResponseError,
  ShuttingDownError,
  UnknownServiceError,
  type ConnectionErrorReason,
  type JsonRpcErrorObject,
} from './errors.js';
export * from './protocol.js';
export {
  LineSplitter,
  TransportHub,
  type Transport,
  type TransportCloseInfo,
  type TransportFactory,
} from './transport.js';
export {
  PortDiscoveryService,
  type PortChangeListener,
  type PortConflictListener,
  type PortDiscoveryOptions,
  type PortDiscoverySnapshot,
} from './services/portDiscovery.js';
export { HealthCheckService, type HealthSnapshot, type HealthStats } from './services/healthCheck.js';
export {
  ConnectionResilienceService,
  DEFAULT_RECONNECTION_CONFIG,
  type ConnectionAttempt,
  type ConnectionState,
  type ConnectionStats,
  type ReconnectionConfig,
  type ResilienceOptions,
} from './services/connectionResilience.js';
export {
  Portd,
  configurePortd,
  connectionResilienceService,
  getDefaultPortd,
  healthCheckService,
  portDiscoveryService,
  type PortdOptions,
} from './portd.js';
