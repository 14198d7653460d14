/**
 * Small helpers the components share: class names, times, and how a port event reads.
 *
 * @module
 */
import type { PortEvent } from '../protocol.js';

/**
 * Join class names, skipping empty ones.
 *
 * @example
 * ```ts
 * cx('portd-panel', undefined, 'my-panel'); // 'portd-panel my-panel'
 * ```
 */
export function cx(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(' ');
}

/**
 * A Unix-ms time as the components show it: `14:03:07` (with `.123` when `ms` is set).
 *
 * @example
 * ```ts
 * formatTime(Date.now(), true); // '14:03:07.123'
 * ```
 */
export function formatTime(timestamp: number, ms = false): string {
  const d = new Date(timestamp);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/**
 * One line of text for a `port_event`, as {@link EventLog} shows it.
 *
 * @example
 * ```ts
 * describePortEvent({ type: 'PortChanged', service: 'api', old_port: 1421, new_port: 1422, timestamp: 0 });
 * // 'api moved 1421 → 1422'
 * ```
 */
export function describePortEvent(event: PortEvent): string {
  const service = event.service ?? null;
  const error = event.error ? ` — ${event.error}` : '';
  switch (event.type) {
    case 'PortChanged':
      return `${service ?? 'a service'} moved ${event.old_port ?? '?'} → ${event.new_port ?? '?'}`;
    case 'PortConflict':
      return `${service ?? 'a service'}: port ${event.port ?? '?'} is taken${error}`;
    case 'PortAvailable':
      return `port ${event.port ?? '?'} is free again${service ? ` (${service})` : ''}`;
    case 'HealthCheckFailed':
      return `health check failed${service ? ` (${service})` : ''}${error}`;
    case 'HealthCheckSuccess':
      return `health check passed${service ? ` (${service})` : ''}`;
    case 'ServiceUp':
      return `${watched(event)} is up at ${place(event)}`;
    case 'ServiceMoved':
      return `${watched(event)} moved ${event.old_port ?? '?'} → ${place(event)}`;
    case 'ServiceDown':
      return `${watched(event)} is down (was at ${place(event)})`;
  }
}

/** `chat/api`: the watched service of another app that a `Service*` event is about. */
function watched(event: PortEvent): string {
  return `${event.app_id ?? '?'}/${event.service ?? '?'}`;
}

/** `127.0.0.1:1422`: where a `Service*` event says the service is (or was). */
function place(event: PortEvent): string {
  return `${event.address ?? event.host ?? '?'}:${event.port ?? '?'}`;
}
