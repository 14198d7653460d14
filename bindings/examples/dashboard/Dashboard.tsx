// The port dashboard: every portd component on one page, over one Portd instance.
import type { Portd } from 'portd';
import {
  ConnectionStatus,
  EventLog,
  HealthCheck,
  HealthLatencyChart,
  PortDiscoveryProvider,
  PortTable,
  usePortDiscoveryContext,
} from 'portd/react';
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';

export interface DashboardProps {
  portd: Portd;
  /** Services leased when the page starts, besides the frontend's own. */
  services?: readonly string[];
  /** Health check period (ms). */
  healthCheckInterval?: number;
}

export function Dashboard({ portd, services = [], healthCheckInterval = 2000 }: DashboardProps): ReactNode {
  return (
    <PortDiscoveryProvider portd={portd} healthCheckInterval={healthCheckInterval}>
      <DashboardPage services={services} />
    </PortDiscoveryProvider>
  );
}

function DashboardPage({ services }: { services: readonly string[] }): ReactNode {
  const { currentPort, isInitialized, healthStatus, connection, error, allocatePort } = usePortDiscoveryContext();
  const [watch, setWatch] = useState<readonly number[]>([]);
  const [formError, setFormError] = useState<string | null>(null);

  const servicesKey = services.join(',');
  useEffect(() => {
    if (!isInitialized) return;
    for (const service of servicesKey.split(',').filter(Boolean)) {
      allocatePort(service).catch((e: unknown) => setFormError(String(e)));
    }
  }, [isInitialized, servicesKey, allocatePort]);

  const onAllocate = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const name = String(data.get('service') ?? '').trim();
    const preferred = Number(data.get('preferred') ?? '');
    if (!name) return;
    setFormError(null);
    allocatePort(name, Number.isInteger(preferred) && preferred > 0 ? preferred : undefined)
      .then(() => form.reset())
      .catch((err: unknown) => setFormError(err instanceof Error ? err.message : String(err)));
  };
  const onWatch = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const port = Number(new FormData(form).get('port') ?? '');
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      setFormError('a port is a number from 1 to 65535');
      return;
    }
    setFormError(null);
    setWatch((w) => (w.includes(port) ? w : [...w, port]));
    form.reset();
  };

  return (
    <div className="dash">
      <header className="dash__header">
        <div className="dash__brand">
          <span className="dash__logo" aria-hidden="true">
            :
          </span>
          <div>
            <h1 className="dash__title">portd dashboard</h1>
            <p className="dash__subtitle">
              {connection.pid !== null ? `sidecar pid ${connection.pid}` : 'starting the sidecar…'}
              {isInitialized ? ` · frontend on port ${currentPort ?? '—'}` : ''} · health {healthStatus}
            </p>
          </div>
        </div>
        <div className="dash__forms">
          <form className="dash__form" onSubmit={onAllocate} aria-label="allocate a port">
            <input name="service" placeholder="service name" aria-label="service name" required />
            <input name="preferred" placeholder="preferred port" aria-label="preferred port" inputMode="numeric" />
            <button type="submit" className="portd-button">
              Allocate
            </button>
          </form>
          <form className="dash__form" onSubmit={onWatch} aria-label="look up a port">
            <input name="port" placeholder="port" aria-label="port to look up" inputMode="numeric" required />
            <button type="submit" className="portd-button portd-button--quiet">
              Who holds it?
            </button>
          </form>
        </div>
      </header>
      {error || formError ? (
        <p className="dash__error" role="alert">
          {formError ?? error?.message}
        </p>
      ) : null}
      <main className="dash__grid">
        <div className="dash__main">
          <PortTable watchPorts={watch} />
          <EventLog limit={30} />
          <HealthLatencyChart samples={40} />
        </div>
        <aside className="dash__side">
          <ConnectionStatus showDetails />
          <HealthCheck showDetails />
        </aside>
      </main>
    </div>
  );
}
