import { useState, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { PortOwner } from '../protocol.js';
import { usePortd } from './context.js';
import { cx, formatTime } from './format.js';
import { usePortStats, type PortRow, type WatchedPort } from './usePortStats.js';

/**
 * Props of {@link PortTable}.
 *
 * @example
 * ```tsx
 * <PortTable title="Dev servers" refreshInterval={1000} watchPorts={[5173]} actions={false} />
 * ```
 */
export interface PortTableProps {
  /** The heading. Default `'Ports'`. */
  title?: string;
  /** Refresh period (ms), besides every event. Default 2000. */
  refreshInterval?: number;
  /** More ports to show with who holds them (orphans can be reclaimed from here). */
  watchPorts?: readonly number[];
  /** Show the Move / Release / Reclaim buttons. Default true. */
  actions?: boolean;
  className?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

function describeProcess(owner: PortOwner | null): string {
  if (!owner || owner.pid == null) return '';
  return `pid ${owner.pid}${owner.name ? ` (${owner.name})` : ''}`;
}

function Holders({ row }: { row: PortRow }): ReactNode {
  const listening = row.owner?.pid ?? null;
  const recorded = row.info.holder_pids.filter((pid) => pid !== listening);
  if (listening === null && recorded.length === 0) return <span className="portd-muted">—</span>;
  return (
    <span className="portd-ports__holders">
      {listening !== null ? (
        <span className="portd-ports__holder" title={row.owner?.cmdline.join(' ')}>
          {describeProcess(row.owner)}
        </span>
      ) : null}
      {recorded.map((pid) => (
        <span key={pid} className="portd-ports__holder portd-muted">
          pid {pid}
        </span>
      ))}
    </span>
  );
}

/**
 * The port status viewer: this app's services with their ports, state (`leased`, `listening`,
 * `conflict`, `orphan`), holders (pid and name of who listens) and when each was allocated; then
 * the ports its services were pushed off and who holds them (the conflict), and any `watchPorts`,
 * with orphans marked and reclaimable. Data from `get_port_stats` and `get_port_owner`, refreshed
 * on every port event.
 *
 * Class names for CSS: `portd-ports`, `portd-table`, `portd-badge` (`data-state`); each row has
 * `data-service`, `data-port` and `data-state`, each watched row `data-port` and `data-orphan`.
 *
 * @example
 * ```tsx
 * import 'portd/react/styles.css';
 * import { PortDiscoveryProvider, PortTable } from 'portd/react';
 *
 * <PortDiscoveryProvider>
 *   <PortTable watchPorts={[5173]} />
 * </PortDiscoveryProvider>
 * ```
 */
export function PortTable({
  title = 'Ports',
  refreshInterval,
  watchPorts,
  actions = true,
  className,
  portd: explicit,
}: PortTableProps): ReactNode {
  const portd = usePortd(explicit);
  const stats = usePortStats({
    portd,
    ...(refreshInterval !== undefined ? { refreshInterval } : {}),
    ...(watchPorts !== undefined ? { watchPorts } : {}),
  });
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  const act = (what: string, op: () => Promise<unknown>) => {
    setBusy(what);
    setActionError(null);
    op()
      .catch((error: unknown) => setActionError(error instanceof Error ? error.message : String(error)))
      .finally(() => {
        setBusy(null);
        void stats.refresh();
      });
  };
  const { client, portDiscovery } = portd;
  const watched: readonly WatchedPort[] = stats.watched;

  return (
    <section className={cx('portd-panel portd-ports', className)} aria-label="portd ports">
      <header className="portd-panel__header">
        <h2 className="portd-panel__title">
          {title} <span className="portd-count">{stats.rows.length}</span>
        </h2>
        <span className="portd-panel__meta">
          {stats.updatedAt !== null ? `updated ${formatTime(stats.updatedAt)}` : stats.loading ? 'loading…' : null}
        </span>
      </header>
      {stats.error ? (
        <p className="portd-error" role="alert">
          {stats.error.message}
        </p>
      ) : null}
      {actionError ? (
        <p className="portd-error" role="alert">
          {actionError}
        </p>
      ) : null}
      <table className="portd-table portd-ports__leases">
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Port</th>
            <th scope="col">State</th>
            <th scope="col">Holders</th>
            <th scope="col">Allocated</th>
            {actions ? <th scope="col" className="portd-table__actions" aria-label="actions" /> : null}
          </tr>
        </thead>
        <tbody>
          {stats.rows.length === 0 ? (
            <tr className="portd-table__empty">
              <td colSpan={actions ? 6 : 5}>{stats.loading ? 'Loading…' : 'No ports leased.'}</td>
            </tr>
          ) : null}
          {stats.rows.map((row) => (
            <tr
              key={row.info.service}
              className="portd-ports__row"
              data-service={row.info.service}
              data-port={row.info.port}
              data-state={row.info.state}
            >
              <th scope="row" className="portd-ports__service">
                {row.info.service}
              </th>
              <td className="portd-ports__port">
                <span className="portd-port">{row.info.port}</span>
                {row.movedFrom !== null ? (
                  <span className="portd-ports__moved" title="moved after a conflict">
                    was {row.movedFrom}
                  </span>
                ) : null}
              </td>
              <td>
                <span className="portd-badge" data-state={row.info.state}>
                  {row.info.state}
                </span>
              </td>
              <td>
                <Holders row={row} />
              </td>
              <td className="portd-muted">{formatTime(row.info.allocated_at)}</td>
              {actions ? (
                <td className="portd-table__actions">
                  <button
                    type="button"
                    className="portd-button portd-button--small"
                    disabled={busy !== null}
                    title="Move this service to another free port"
                    onClick={() => act(`move:${row.info.service}`, () => portDiscovery.handlePortConflict(row.info.service))}
                  >
                    Move
                  </button>
                  <button
                    type="button"
                    className="portd-button portd-button--small portd-button--quiet"
                    disabled={busy !== null}
                    onClick={() => act(`release:${row.info.service}`, () => portDiscovery.releasePort(row.info.service))}
                  >
                    Release
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {watched.length > 0 ? (
        <>
          <h3 className="portd-panel__subtitle">Taken and watched ports</h3>
          <table className="portd-table portd-ports__watched" aria-label="taken and watched ports">
            <thead>
              <tr>
                <th scope="col">Port</th>
                <th scope="col">Held by</th>
                <th scope="col">Lease</th>
                <th scope="col">Why</th>
                {actions ? <th scope="col" className="portd-table__actions" aria-label="actions" /> : null}
              </tr>
            </thead>
            <tbody>
              {watched.map((w) => {
                const orphan = w.owner?.orphan ?? false;
                const lease = w.owner?.lease ?? null;
                return (
                  <tr
                    key={w.port}
                    className="portd-ports__row"
                    data-port={w.port}
                    data-orphan={orphan}
                    data-state={orphan ? 'orphan' : w.takenFrom !== null && w.owner ? 'conflict' : w.owner ? 'taken' : 'free'}
                  >
                    <th scope="row">
                      <span className="portd-port">{w.port}</span>
                    </th>
                    <td title={w.owner?.cmdline.join(' ')}>
                      {w.owner?.pid != null ? (
                        <>
                          {describeProcess(w.owner)}
                          {w.owner.user ? <span className="portd-muted"> · {w.owner.user}</span> : null}
                        </>
                      ) : (
                        <span className="portd-muted">{w.owner ? 'unknown process' : 'free'}</span>
                      )}
                    </td>
                    <td>
                      {lease ? (
                        <>
                          {lease.service} <span className="portd-muted">({lease.app_id})</span>
                        </>
                      ) : (
                        <span className="portd-muted">—</span>
                      )}
                    </td>
                    <td>
                      {orphan ? (
                        <span className="portd-badge" data-state="orphan">
                          orphan
                        </span>
                      ) : w.takenFrom !== null ? (
                        <>
                          <span className="portd-badge" data-state={w.owner ? 'conflict' : 'free'}>
                            {w.owner ? 'conflict' : 'free again'}
                          </span>{' '}
                          <span className="portd-muted">
                            taken from {w.takenFrom}
                            {w.since !== null ? ` at ${formatTime(w.since)}` : ''}
                          </span>
                        </>
                      ) : (
                        <span className="portd-muted">watched</span>
                      )}
                    </td>
                    {actions ? (
                      <td className="portd-table__actions">
                        {orphan ? (
                          <button
                            type="button"
                            className="portd-button portd-button--small portd-button--danger"
                            disabled={busy !== null}
                            title="End the recorded orphan process that holds this port"
                            onClick={() => act(`reclaim:${w.port}`, () => client.reclaimOrphan(w.port))}
                          >
                            Reclaim
                          </button>
                        ) : null}
                      </td>
                    ) : null}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
