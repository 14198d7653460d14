/**
 * The relay between a page and the `portd/vite` plugin: custom events over Vite's own dev-server
 * WebSocket (`import.meta.hot.send` / `server.ws.on`). The page asks for a sidecar (a session),
 * then lines go both ways, as they would over the sidecar's stdin and stdout. Shared by
 * `transports/browser.ts` (the page) and `vite/index.ts` (the dev server), written once here.
 *
 * @internal
 * @module
 */
import type { TransportCloseInfo } from '../transport.js';

/** @internal The custom events, by direction. */
export const RELAY = {
  /** page → server: start a sidecar for this session. */
  spawn: 'portd:spawn',
  /** page → server: one line for the sidecar's stdin. */
  send: 'portd:send',
  /** page → server: end the sidecar's stdin (it exits 0). */
  close: 'portd:close',
  /** page → server: kill the sidecar. */
  kill: 'portd:kill',
  /** server → page: the sidecar started (its pid). */
  spawned: 'portd:spawned',
  /** server → page: one line the sidecar wrote to stdout. */
  line: 'portd:line',
  /** server → page: the sidecar is gone (or never started). */
  exit: 'portd:exit',
} as const;

/** @internal A message that names its session (one sidecar). */
export interface RelaySession {
  readonly session: string;
}

/** @internal `portd:send` and `portd:line`. */
export interface RelayLine extends RelaySession {
  readonly line: string;
}

/** @internal `portd:spawned`. */
export interface RelaySpawned extends RelaySession {
  readonly pid: number;
}

/** @internal `portd:exit`: a {@link TransportCloseInfo} with the error as text. */
export interface RelayExit extends RelaySession, Omit<TransportCloseInfo, 'error'> {
  readonly error?: string;
}

/** @internal Whether `data` is a relay message naming a session (messages come from the network). */
export function isRelayMessage(data: unknown): data is RelaySession & Record<string, unknown> {
  return (
    typeof data === 'object' &&
    data !== null &&
    typeof (data as { session?: unknown }).session === 'string' &&
    (data as { session: string }).session.length > 0 &&
    (data as { session: string }).session.length <= 128
  );
}
