import { createContext, useContext } from 'react';
import { getDefaultPortd, type Portd } from '../portd.js';

/** @internal What {@link PortDiscoveryProvider} provides. */
export interface PortdContextValue {
  readonly portd: Portd;
}

/** @internal */
export const PortdContext = createContext<PortdContextValue | null>(null);

/**
 * The {@link Portd} instance the hooks and components use: the nearest
 * `<PortDiscoveryProvider>`'s, else the default one (see `configurePortd`).
 *
 * @example
 * ```tsx
 * function Pid() {
 *   const portd = usePortd();
 *   return <span>{portd.client.pid}</span>;
 * }
 * ```
 */
export function usePortd(explicit?: Portd): Portd {
  const ctx = useContext(PortdContext);
  return explicit ?? ctx?.portd ?? getDefaultPortd();
}
