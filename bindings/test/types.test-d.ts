// Type tests (vitest --typecheck): they pin the public types, so a change to any of them is a
// deliberate one.
import { describe, expectTypeOf, it } from 'vitest';
import type * as Core from '../src/index.js';
import {
  ConnectionError,
  ERROR_CLASSES,
  InvalidParamsError,
  PortdClient,
  ResponseError,
  UnknownServiceError,
  type CallOptions,
  type CamelCase,
  type ClientMethodName,
  type ConnectionStats,
  type HealthCheckResult,
  type HealthStatus,
  type MethodName,
  type ParamsOf,
  type PortConfig,
  type PortdErrorCode,
  type PortdMethods,
  type PortEvent,
  type PortEventType,
  type PortInfo,
  type PortOwner,
  type Ready,
  type ReconnectionConfig,
  type ResultOf,
  type ServiceLocation,
  type Stats,
  type SystemHealthStatus,
  type Transport,
  type TransportCloseInfo,
  type TransportFactory,
} from '../src/index.js';
import type {
  ConnectionStatusProps,
  HealthCheckProps,
  PortDiscoveryProviderProps,
  UsePortDiscoveryOptions,
  UsePortDiscoveryResult,
} from '../src/react/index.js';
import type { NodeTransportOptions } from '../src/transports/node.js';
import type { TauriTransportOptions } from '../src/transports/tauri.js';

declare const client: PortdClient;

describe('wire types (generated)', () => {
  it('has exactly the protocol methods', () => {
    expectTypeOf<MethodName>().toEqualTypeOf<
      | 'init_port_manager'
      | 'find_available_port'
      | 'allocate_port'
      | 'release_port'
      | 'is_port_available'
      | 'port_health_check'
      | 'check_port_conflicts'
      | 'handle_port_conflict'
      | 'get_port_info'
      | 'get_port_stats'
      | 'perform_health_check'
      | 'get_port_owner'
      | 'attach_process'
      | 'reclaim_orphan'
      | 'get_stats'
      | 'shutdown'
      | 'load_port_plan'
      | 'check_port_plan'
      | 'next_plan_port'
      | 'resolve_service'
      | 'watch_service'
      | 'unwatch_service'
    >();
    expectTypeOf<ParamsOf<'resolve_service'>>().toEqualTypeOf<{ app_id: string; service_name: string }>();
    expectTypeOf<ResultOf<'watch_service'>>().toEqualTypeOf<ServiceLocation[]>();
    expectTypeOf<ParamsOf<'allocate_port'>>().toEqualTypeOf<{ service_name: string; preferred_port?: number | null }>();
    expectTypeOf<ResultOf<'get_port_owner'>>().toEqualTypeOf<PortOwner | null>();
    expectTypeOf<ResultOf<'get_port_stats'>>().toEqualTypeOf<{ [k: string]: PortInfo | undefined }>();
    expectTypeOf<PortdMethods['perform_health_check']['result']>().toEqualTypeOf<SystemHealthStatus>();
  });

  it('pins the seed shapes', () => {
    expectTypeOf<PortEventType>().toEqualTypeOf<
      | 'PortChanged'
      | 'PortConflict'
      | 'PortAvailable'
      | 'HealthCheckFailed'
      | 'HealthCheckSuccess'
      | 'ServiceUp'
      | 'ServiceMoved'
      | 'ServiceDown'
    >();
    expectTypeOf<PortEvent>().toEqualTypeOf<{
      type: PortEventType;
      old_port?: number | null;
      new_port?: number | null;
      port?: number | null;
      service?: string | null;
      app_id?: string | null;
      host?: string | null;
      address?: string | null;
      error?: string | null;
      timestamp: number;
    }>();
    // what the sidecar always sends is required
    expectTypeOf<ServiceLocation>().toEqualTypeOf<{
      app_id: string;
      service: string;
      port: number;
      host: string;
      address: string;
      local: boolean;
      state: 'live' | 'remote' | 'orphan';
      pid: number;
      holder_pids: number[];
      allocated_at: number;
    }>();
    expectTypeOf<HealthCheckResult>().toEqualTypeOf<{
      component: string;
      status: 'healthy' | 'unhealthy' | 'unknown';
      message: string;
      timestamp: number;
      latency?: number | null;
      details?: { [k: string]: unknown } | null;
    }>();
    expectTypeOf<HealthStatus>().toEqualTypeOf<'healthy' | 'unhealthy' | 'unknown'>();
    expectTypeOf<SystemHealthStatus>().toEqualTypeOf<{
      status: HealthStatus;
      components: HealthCheckResult[];
      timestamp: number;
    }>();
    expectTypeOf<PortInfo['state']>().toEqualTypeOf<'leased' | 'listening' | 'conflict' | 'orphan'>();
    expectTypeOf<Ready['protocol']>().toEqualTypeOf<1>();
    expectTypeOf<Ready['framing']>().toEqualTypeOf<'ndjson' | 'lsp'>();
    // what the sidecar always sends is required
    expectTypeOf<PortConfig['preferred_port']>().toEqualTypeOf<number>();
    expectTypeOf<PortConfig['port_range']>().toEqualTypeOf<[number, number]>();
    expectTypeOf<PortConfig['health_check_interval']>().toEqualTypeOf<number>();
    expectTypeOf<Stats>().toHaveProperty('uptime').toEqualTypeOf<number>();
  });

  it('has one error code per class', () => {
    expectTypeOf<PortdErrorCode>().toEqualTypeOf<
      -32700 | -32600 | -32601 | -32602 | -32603 | -32001 | -32002 | -32003 | -32004 | -32005 | -32006
    >();
    expectTypeOf<keyof typeof ERROR_CLASSES>().toEqualTypeOf<PortdErrorCode>();
    expectTypeOf<InstanceType<(typeof ERROR_CLASSES)[-32002]>>().toEqualTypeOf<UnknownServiceError>();
  });
});

describe('PortdClient', () => {
  it('has a camelCase method per RPC with the RPC result type', () => {
    expectTypeOf<CamelCase<'get_port_info'>>().toEqualTypeOf<'getPortInfo'>();
    expectTypeOf<Pick<PortdClient, ClientMethodName>>().toBeObject();
    expectTypeOf(client.allocatePort).toEqualTypeOf<
      (serviceName: string, preferredPort?: number, options?: CallOptions) => Promise<number>
    >();
    expectTypeOf(client.isPortAvailable).toEqualTypeOf<(port: number, host?: string, options?: CallOptions) => Promise<boolean>>();
    expectTypeOf(client.handlePortConflict).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(client.getPortStats).returns.resolves.toEqualTypeOf<{ [k: string]: PortInfo | undefined }>();
    expectTypeOf(client.performHealthCheck).returns.resolves.toEqualTypeOf<SystemHealthStatus>();
    expectTypeOf(client.resolveService).toEqualTypeOf<
      (appId: string, serviceName: string, options?: CallOptions) => Promise<ServiceLocation[]>
    >();
    expectTypeOf(client.watchService).returns.resolves.toEqualTypeOf<ServiceLocation[]>();
    expectTypeOf(client.unwatchService).returns.toEqualTypeOf<Promise<null>>();
    expectTypeOf(client.ready).toEqualTypeOf<Promise<Ready>>();
    expectTypeOf(client.onEvent).parameter(0).toEqualTypeOf<(event: PortEvent) => void>();
    expectTypeOf(client.onEvent).returns.toEqualTypeOf<() => void>();
  });

  it('types call() by method', () => {
    expectTypeOf(client.call('allocate_port', { service_name: 'x' })).toEqualTypeOf<Promise<number>>();
    expectTypeOf(client.call('get_stats')).toEqualTypeOf<Promise<Stats>>();
    expectTypeOf(client.call('get_port_info', { service_name: 'x' }, { timeoutMs: 1 })).resolves.toEqualTypeOf<PortInfo>();
    // @ts-expect-error service_name is required
    void client.call('allocate_port', {});
    // @ts-expect-error params are required for allocate_port
    void client.call('allocate_port');
    // @ts-expect-error unknown params are refused, as the sidecar does
    void client.call('allocate_port', { service_name: 'x', bogus: 1 });
    // @ts-expect-error snake_case on the wire
    void client.call('allocate_port', { serviceName: 'x' });
    // @ts-expect-error no such method
    void client.call('allocatePort', { service_name: 'x' });
    expectTypeOf<CallOptions>().toEqualTypeOf<{ timeoutMs?: number; signal?: AbortSignal }>();
  });

  it('splits errors into ResponseError and ConnectionError', () => {
    expectTypeOf<InvalidParamsError>().toMatchTypeOf<ResponseError>();
    expectTypeOf<ResponseError['code']>().toEqualTypeOf<number>();
    expectTypeOf<ResponseError['data']>().toEqualTypeOf<unknown>();
    expectTypeOf<ConnectionError['reason']>().toEqualTypeOf<'closed' | 'timeout' | 'spawn-failed'>();
  });
});

describe('transports', () => {
  it('pins the Transport seam', () => {
    expectTypeOf<Transport['send']>().toEqualTypeOf<(line: string) => void | Promise<void>>();
    expectTypeOf<Transport['onLine']>().toEqualTypeOf<(listener: (line: string) => void) => () => void>();
    expectTypeOf<TransportCloseInfo['reason']>().toEqualTypeOf<'exit' | 'spawn-failed' | 'error'>();
    expectTypeOf<TransportFactory>().toEqualTypeOf<() => Transport | Promise<Transport>>();
    expectTypeOf<NodeTransportOptions>().toHaveProperty('command').toEqualTypeOf<string>();
    expectTypeOf<TauriTransportOptions['program']>().toEqualTypeOf<string | undefined>();
  });
});

describe('services', () => {
  it('has the seed ReconnectionConfig', () => {
    expectTypeOf<ReconnectionConfig>().toEqualTypeOf<{
      maxRetries: number;
      initialDelay: number;
      maxDelay: number;
      backoffFactor: number;
      jitter: boolean;
    }>();
    expectTypeOf<ConnectionStats['state']>().toEqualTypeOf<
      'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'failed' | 'closed'
    >();
  });

  it('has the seed method signatures', () => {
    type PDS = Core.PortDiscoveryService;
    expectTypeOf<PDS['initialize']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<PDS['allocatePort']>().parameter(0).toEqualTypeOf<string>();
    expectTypeOf<PDS['allocatePort']>().returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf<PDS['isPortAvailable']>().returns.toEqualTypeOf<Promise<boolean>>();
    expectTypeOf<PDS['handlePortConflict']>().returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf<PDS['getPortStats']>().returns.resolves.toEqualTypeOf<Record<string, PortInfo | undefined>>();
    type HCS = Core.HealthCheckService;
    expectTypeOf<HCS['performHealthCheck']>().returns.toEqualTypeOf<Promise<SystemHealthStatus>>();
    expectTypeOf<HCS['startHealthCheck']>().toEqualTypeOf<(interval?: number) => void>();
    expectTypeOf<HCS['addListener']>().toEqualTypeOf<(listener: (status: SystemHealthStatus) => void) => () => void>();
    type CRS = Core.ConnectionResilienceService;
    expectTypeOf<CRS['startMonitoring']>().toEqualTypeOf<() => Promise<void>>();
    expectTypeOf<CRS['checkConnection']>().toEqualTypeOf<() => Promise<boolean>>();
    expectTypeOf<CRS['forceReconnect']>().toEqualTypeOf<() => Promise<void>>();
    expectTypeOf<CRS['getConnectionStats']>().toEqualTypeOf<() => ConnectionStats>();
  });
});

describe('React', () => {
  it('pins usePortDiscovery as in the seed', () => {
    expectTypeOf<UsePortDiscoveryOptions>().toEqualTypeOf<{
      autoStart?: boolean;
      onPortChange?: (newPort: number, oldPort: number) => void;
      onPortConflict?: (port: number, service: string) => void;
      serviceName?: string;
      portd?: Core.Portd;
    }>();
    expectTypeOf<UsePortDiscoveryResult['currentPort']>().toEqualTypeOf<number | null>();
    expectTypeOf<UsePortDiscoveryResult['isInitialized']>().toEqualTypeOf<boolean>();
    expectTypeOf<UsePortDiscoveryResult['healthStatus']>().toEqualTypeOf<HealthStatus>();
    expectTypeOf<UsePortDiscoveryResult['handlePortConflict']>().toEqualTypeOf<(serviceName?: string) => Promise<number>>();
    expectTypeOf<UsePortDiscoveryResult['performHealthCheck']>().toEqualTypeOf<() => Promise<SystemHealthStatus>>();
    expectTypeOf<HealthCheckProps['showDetails']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<ConnectionStatusProps['showDetails']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<PortDiscoveryProviderProps>().toHaveProperty('children');
  });

  it('keeps React out of the core', () => {
    expectTypeOf<typeof Core>().not.toHaveProperty('usePortDiscovery');
    expectTypeOf<typeof Core>().not.toHaveProperty('PortDiscoveryProvider');
    expectTypeOf<typeof Core>().toHaveProperty('portDiscoveryService');
  });
});
