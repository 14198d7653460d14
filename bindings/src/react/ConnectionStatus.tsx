import { useSyncExternalStore, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { ConnectionState } from '../services/connectionResilience.js';
import { usePortd } from './context.js';
import { cx, formatTime } from './format.js';

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
  /** The heading. Default `'Sidecar'`. */
  title?: string;
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

function round(ms: number): string {
  return Number.isInteger(ms) ? String(ms) : ms.toFixed(1);
}

/**
 * The seed's connection panel: the sidecar connection's state and, with `showDetails`, the
 * sidecar's pid and version, the reconnection statistics and a button to reconnect now. Styled
 * by `portd/react/styles.css` when the app imports it; `portd-connection`, `portd-dot` and
 * `data-state` are the hooks for CSS.
 *
 * @example
 * ```tsx
 * <PortDiscoveryProvider>
 *   <ConnectionStatus showDetails={true} />
 * </PortDiscoveryProvider>
 * ```
 */
export function ConnectionStatus({
  showDetails = false,
  title = 'Sidecar',
  className,
  portd: explicit,
}: ConnectionStatusProps): ReactNode {
  const { resilience } = usePortd(explicit);
  const s = useSyncExternalStore(resilience.subscribe, resilience.getSnapshot, resilience.getSnapshot);
  return (
    <section className={cx('portd-panel portd-connection', className)} aria-label="portd connection" data-state={s.state}>
      <header className="portd-panel__header">
        <h2 className="portd-panel__title">{title}</h2>
        {showDetails ? (
          <button
            type="button"
            className="portd-button portd-button--small"
            onClick={() => void resilience.forceReconnect().catch(() => undefined)}
          >
            Reconnect
          </button>
        ) : null}
      </header>
      <p role="status" className="portd-connection__summary">
        <span className="portd-dot" data-state={s.state} aria-hidden="true" />
        Connection: <strong>{LABEL[s.state]}</strong>
        {s.nextDelay !== null ? <span className="portd-muted"> (next attempt in {Math.ceil(s.nextDelay / 1000)} s)</span> : null}
      </p>
      {showDetails ? (
        <dl className="portd-facts">
          <dt>Sidecar</dt>
          <dd>{s.pid !== null ? `pid ${s.pid}, portd ${s.version ?? '?'}` : '—'}</dd>
          <dt>Since</dt>
          <dd>{s.lastConnectedAt !== null ? formatTime(s.lastConnectedAt) : '—'}</dd>
          <dt>Reconnections</dt>
          <dd>{s.reconnections}</dd>
          <dt>Attempts</dt>
          <dd>
            {s.totalAttempts} ({s.failedAttempts} failed, success rate {Math.round(s.successRate * 100)}%)
          </dd>
          <dt>Latency</dt>
          <dd>{s.lastLatency !== null ? `${round(s.lastLatency)} ms (avg ${round(s.averageLatency ?? s.lastLatency)} ms)` : '—'}</dd>
          {s.lastError !== null ? (
            <>
              <dt>Last error</dt>
              <dd className="portd-error" role="alert">
                {s.lastError}
              </dd>
            </>
          ) : null}
        </dl>
      ) : null}
    </section>
  );
}
