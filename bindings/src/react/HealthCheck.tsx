import { useSyncExternalStore, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { HealthStatus } from '../protocol.js';
import { usePortd } from './context.js';
import { cx, formatTime } from './format.js';

/**
 * Props of {@link HealthCheck}.
 *
 * @example
 * ```tsx
 * <HealthCheck showDetails className="health" />
 * ```
 */
export interface HealthCheckProps {
  /** List each component (status, message, latency) and the counters. Default false. */
  showDetails?: boolean;
  /** The heading. Default `'Health'`. */
  title?: string;
  className?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

const LABEL: Record<HealthStatus, string> = { healthy: 'Healthy', unhealthy: 'Unhealthy', unknown: 'Unknown' };

/**
 * The seed's health panel: the overall status, a button to check now, and with `showDetails`
 * each component of the last check (status, message, latency) and the counters. Styled by
 * `portd/react/styles.css` when the app imports it; class names (`portd-health`,
 * `portd-health__component`, `portd-dot`) and `data-status` attributes are the hooks for CSS.
 *
 * @example
 * ```tsx
 * <PortDiscoveryProvider>
 *   <HealthCheck showDetails={true} />
 * </PortDiscoveryProvider>
 * ```
 */
export function HealthCheck({ showDetails = false, title = 'Health', className, portd: explicit }: HealthCheckProps): ReactNode {
  const { healthCheck } = usePortd(explicit);
  const snap = useSyncExternalStore(healthCheck.subscribe, healthCheck.getSnapshot, healthCheck.getSnapshot);
  const last = snap.lastStatus;
  return (
    <section className={cx('portd-panel portd-health', className)} aria-label="portd health" data-status={snap.status}>
      <header className="portd-panel__header">
        <h2 className="portd-panel__title">{title}</h2>
        <button
          type="button"
          className="portd-button portd-button--small"
          disabled={snap.isChecking}
          onClick={() => void healthCheck.performHealthCheck().catch(() => undefined)}
        >
          Check now
        </button>
      </header>
      <p role="status" className="portd-health__summary">
        <span className="portd-dot" data-status={snap.status} aria-hidden="true" />
        Health: <strong>{LABEL[snap.status]}</strong>
        {snap.isChecking ? <span className="portd-muted"> (checking…)</span> : null}
      </p>
      {showDetails ? (
        <div className="portd-health__details">
          {last ? (
            <ul aria-label="components" className="portd-health__components">
              {last.components.map((c) => (
                <li key={c.component} className="portd-health__component" data-status={c.status}>
                  <span className="portd-dot" data-status={c.status} aria-hidden="true" />
                  <span className="portd-health__text">
                    <span className="portd-health__name">{c.component}</span>
                    <span className="portd-health__message">{c.message}</span>
                  </span>
                  <span className="portd-health__latency">{c.latency != null ? `${c.latency.toFixed(1)} ms` : ''}</span>
                  <span className="portd-badge" data-status={c.status}>
                    {c.status}
                  </span>
                </li>
              ))}
            </ul>
          ) : (
            <p className="portd-muted">No check yet.</p>
          )}
          <p className="portd-health__stats portd-muted">
            Checks: {snap.stats.totalChecks}, failed: {snap.stats.failedChecks}
            {snap.stats.lastCheckAt !== null ? `, last at ${formatTime(snap.stats.lastCheckAt)}` : null}
            {snap.stats.lastLatency !== null ? ` (${snap.stats.lastLatency} ms)` : null}
          </p>
          {snap.error ? (
            <p className="portd-error" role="alert">
              {snap.error.message}
            </p>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
