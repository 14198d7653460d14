import { useEffect, useState, type ReactNode } from 'react';
import type { Portd } from '../portd.js';
import type { PortEvent } from '../protocol.js';
import { usePortd } from './context.js';
import { cx, describePortEvent, formatTime } from './format.js';

// A stable React key per event object (events carry no id of their own).
const keys = new WeakMap<PortEvent, number>();
let lastKey = 0;
function keyOf(event: PortEvent): number {
  let k = keys.get(event);
  if (k === undefined) {
    k = ++lastKey;
    keys.set(event, k);
  }
  return k;
}

/**
 * Options of {@link usePortEvents}.
 *
 * @example
 * ```tsx
 * const events = usePortEvents({ limit: 20 });
 * ```
 */
export interface UsePortEventsOptions {
  /** Keep the last this many events. Default 50. */
  limit?: number;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

/**
 * The last `limit` `port_event`s received since the component mounted, newest first, and a
 * function to clear them.
 *
 * @example
 * ```tsx
 * function LastEvent() {
 *   const [events] = usePortEvents({ limit: 1 });
 *   return <span>{events[0]?.type ?? 'no event yet'}</span>;
 * }
 * ```
 */
export function usePortEvents(options: UsePortEventsOptions = {}): [readonly PortEvent[], () => void] {
  const { client } = usePortd(options.portd);
  const limit = Math.max(1, options.limit ?? 50);
  const [events, setEvents] = useState<readonly PortEvent[]>([]);
  useEffect(
    () => client.onEvent((event) => setEvents((list) => [event, ...list].slice(0, limit))),
    [client, limit],
  );
  return [events, () => setEvents([])];
}

/**
 * Props of {@link EventLog}.
 *
 * @example
 * ```tsx
 * <EventLog limit={20} title="Port events" />
 * ```
 */
export interface EventLogProps extends UsePortEventsOptions {
  /** The heading. Default `'Events'`. */
  title?: string;
  className?: string;
}

/**
 * The event log: the last `limit` `port_event`s (`PortChanged`, `PortConflict`, `PortAvailable`,
 * `HealthCheckFailed`, `HealthCheckSuccess`), newest first, with their time and what they mean.
 * Class names for CSS: `portd-events`, `portd-events__item` (`data-type`), `portd-badge`
 * (`data-type`).
 *
 * @example
 * ```tsx
 * import { PortDiscoveryProvider, EventLog } from 'portd/react';
 *
 * <PortDiscoveryProvider>
 *   <EventLog limit={50} />
 * </PortDiscoveryProvider>
 * ```
 */
export function EventLog({ limit, title = 'Events', className, portd }: EventLogProps): ReactNode {
  const [events, clear] = usePortEvents({
    ...(limit !== undefined ? { limit } : {}),
    ...(portd !== undefined ? { portd } : {}),
  });
  return (
    <section className={cx('portd-panel portd-events', className)} aria-label="portd events">
      <header className="portd-panel__header">
        <h2 className="portd-panel__title">
          {title} <span className="portd-count">{events.length}</span>
        </h2>
        <button type="button" className="portd-button portd-button--small portd-button--quiet" disabled={events.length === 0} onClick={clear}>
          Clear
        </button>
      </header>
      {events.length === 0 ? (
        <p className="portd-events__empty portd-muted">No events yet.</p>
      ) : (
        <ol className="portd-events__list" aria-label="port events">
          {events.map((e) => (
            <li key={keyOf(e)} className="portd-events__item" data-type={e.type}>
              <time className="portd-events__time" dateTime={new Date(e.timestamp).toISOString()}>
                {formatTime(e.timestamp, true)}
              </time>
              <span className="portd-badge" data-type={e.type}>
                {e.type}
              </span>
              <span className="portd-events__text">{describePortEvent(e)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
