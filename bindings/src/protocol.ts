/**
 * The wire types, re-exported from the generated `protocol.gen.ts`, and a few helper types
 * computed from them (never written by hand).
 *
 * @module
 */
import type { PortdMethods, PortdNotifications } from './protocol.gen.js';

export type {
  AllocatePortParams,
  AttachProcessParams,
  CheckPortPlanParams,
  FindAvailablePortParams,
  FrontendConfig,
  HealthCheckResult,
  InitPortManagerParams,
  IsPortAvailableParams,
  NextPlanPortParams,
  NoParams,
  PlanFinding,
  PlanPathParams,
  PortConfig,
  PortConfigUpdate,
  PortdErrorCode,
  PortdMethods,
  PortdNotifications,
  PortdProtocol,
  PortEvent,
  PortInfo,
  PortOwner,
  PortParams,
  PortPlanSummary,
  Ready,
  ResourceThresholds,
  ServiceLocation,
  ServiceParams,
  ServiceRefParams,
  Stats,
  SystemHealthStatus,
} from './protocol.gen.js';
export {
  PORTD_ERROR_CODES,
  PORTD_METHOD_NAMES,
  PORTD_NOTIFICATION_NAMES,
} from './protocol.gen.js';

/**
 * The name of a JSON-RPC method, e.g. `'allocate_port'`.
 *
 * @example
 * ```ts
 * const m: MethodName = 'allocate_port';
 * ```
 */
export type MethodName = keyof PortdMethods;

/**
 * The params object of a method.
 *
 * @example
 * ```ts
 * const p: ParamsOf<'allocate_port'> = { service_name: 'vite', preferred_port: 5173 };
 * ```
 */
export type ParamsOf<M extends MethodName> = PortdMethods[M]['params'];

/**
 * The result of a method.
 *
 * @example
 * ```ts
 * const port: ResultOf<'allocate_port'> = await client.call('allocate_port', { service_name: 'vite' });
 * ```
 */
export type ResultOf<M extends MethodName> = PortdMethods[M]['result'];

/**
 * The payload of a notification.
 *
 * @example
 * ```ts
 * const onEvent = (e: NotificationOf<'port_event'>) => console.log(e.type);
 * ```
 */
export type NotificationOf<N extends keyof PortdNotifications> = PortdNotifications[N];

/**
 * A port event's kind: `'PortChanged' | 'PortConflict' | …`.
 *
 * @example
 * ```ts
 * const kind: PortEventType = 'PortChanged';
 * ```
 */
export type PortEventType = PortdNotifications['port_event']['type'];

/**
 * A health status: `'healthy' | 'unhealthy' | 'unknown'`.
 *
 * @example
 * ```ts
 * const s: HealthStatus = status.status;
 * ```
 */
export type HealthStatus = PortdMethods['perform_health_check']['result']['status'];

/**
 * `snake_case` → `camelCase`, at the type level (`'allocate_port'` → `'allocatePort'`).
 *
 * @example
 * ```ts
 * type T = CamelCase<'get_port_info'>; // 'getPortInfo'
 * ```
 */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/**
 * The camelCase name of each method's convenience wrapper on {@link PortdClient}.
 *
 * @example
 * ```ts
 * const name: ClientMethodName = 'allocatePort';
 * ```
 */
export type ClientMethodName = CamelCase<MethodName>;
