import { useSyncExternalStore, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { HealthStatus } from '../protocol.js';
import { usePortd } from './context.js';

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
  className?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

const LABEL: Record<HealthStatus, string> = { healthy: 'Healthy', unhealthy: 'Unhealthy', unknown: 'Unknown' };

/**
 * The seed's health panel: the overall status, a button to check now, and with `showDetails`
 * each component of the last check. Unstyled; `data-status` attributes and `className` are the
 * hooks for CSS.
 *
 * @example
 * ```tsx
 * <PortDiscoveryProvider>
 *   <HealthCheck showDetails={true} />
 * </PortDiscoveryProvider>
 * ```
 */
export function HealthCheck({ showDetails = false, className, portd: explicit }: HealthCheckProps): ReactNode {
  const { healthCheck } = usePortd(explicit);
  const snap = useSyncExternalStore(healthCheck.subscribe, healthCheck.getSnapshot, healthCheck.getSnapshot);
  const last = snap.lastStatus;
  return (
    <section className={className} aria-label="portd health" data-status={snap.status}>
      <p role="status">
        Health: <strong>{LABEL[snap.status]}</strong>
        {snap.isChecking ? ' (checking…)' : null}
      </p>
      <button type="button" disabled={snap.isChecking} onClick={() => void healthCheck.performHealthCheck().catch(() => undefined)}>
        Check now
      </button>
      {showDetails ? (
        <div>
          {last ? (
            <ul aria-label="components">
              {last.components.map((c) => (
                <li key={c.component} data-status={c.status}>
                  <strong>{c.component}</strong>: {c.status} — {c.message}
                  {c.latency != null ? ` (${c.latency.toFixed(1)} ms)` : null}
                </li>
              ))}
            </ul>
          ) : (
            <p>No check yet.</p>
          )}
          <p>
            Checks: {snap.stats.totalChecks}, failed: {snap.stats.failedChecks}
            {snap.stats.lastCheckAt !== null ? `, last at ${new Date(snap.stats.lastCheckAt).toLocaleTimeString()}` : null}
          </p>
          {snap.error ? <p role="alert">{snap.error.message}</p> : null}
        </div>
      ) : null}
    </section>
  );
}
