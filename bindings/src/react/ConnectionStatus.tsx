import { useSyncExternalStore, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { ConnectionState } from '../services/connectionResilience.js';
import { usePortd } from './context.js';

/**
 * Props of {@link ConnectionStatus}.
 *
 * @example
 * ```tsx
 * <ConnectionStatus showDetails className="conn" />
 * ```
 */
export interface ConnectionStatusProps {
  /** Show the sidecar's pid and version, the reconnection counters, and a Reconnect button. Default false. */
  showDetails?: boolean;
  className?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

const LABEL: Record<ConnectionState, string> = {
  idle: 'Not started',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  disconnected: 'Disconnected',
  failed: 'Failed',
  closed: 'Closed',
};

/**
 * The seed's connection panel: the sidecar connection's state and, with `showDetails`, its
 * statistics and a button to reconnect now. Unstyled; `data-state` is the hook for CSS.
 *
 * @example
 * ```tsx
 * <PortDiscoveryProvider>
 *   <ConnectionStatus showDetails={true} />
 * </PortDiscoveryProvider>
 * ```
 */
export function ConnectionStatus({ showDetails = false, className, portd: explicit }: ConnectionStatusProps): ReactNode {
  const { resilience } = usePortd(explicit);
  const s = useSyncExternalStore(resilience.subscribe, resilience.getSnapshot, resilience.getSnapshot);
  return (
    <section className={className} aria-label="portd connection" data-state={s.state}>
      <p role="status">
        Connection: <strong>{LABEL[s.state]}</strong>
        {s.nextDelay !== null ? ` (next attempt in ${Math.ceil(s.nextDelay / 1000)} s)` : null}
      </p>
      {showDetails ? (
        <div>
          <dl>
            <dt>Sidecar</dt>
            <dd>{s.pid !== null ? `pid ${s.pid}, portd ${s.version ?? '?'}` : '—'}</dd>
            <dt>Reconnections</dt>
            <dd>{s.reconnections}</dd>
            <dt>Attempts</dt>
            <dd>
              {s.totalAttempts} ({s.failedAttempts} failed, success rate {Math.round(s.successRate * 100)}%)
            </dd>
            <dt>Latency</dt>
            <dd>{s.lastLatency !== null ? `${s.lastLatency} ms (avg ${s.averageLatency ?? s.lastLatency} ms)` : '—'}</dd>
            {s.lastError !== null ? (
              <>
                <dt>Last error</dt>
                <dd role="alert">{s.lastError}</dd>
              </>
            ) : null}
          </dl>
          <button type="button" onClick={() => void resilience.forceReconnect().catch(() => undefined)}>
            Reconnect
          </button>
        </div>
      ) : null}
    </section>
  );
}
