import { useCallback, useEffect, useRef, useState } from 'react';
import type { Portd } from '../portd.js';
import type { PortEvent, PortInfo, PortOwner } from '../protocol.js';
import { usePortd } from './context.js';

/**
 * One lease of this app, with who listens on its port.
 *
 * @example
 * ```tsx
 * const row: PortRow = rows[0]!;
 * console.log(row.info.service, row.info.port, row.info.state, row.owner?.name);
 * ```
 */
export interface PortRow {
  /** The lease (`get_port_stats`). */
  readonly info: PortInfo;
  /** Who listens on its port now (`get_port_owner`); `null` when nobody does. */
  readonly owner: PortOwner | null;
  /** The port it had before its last move (a conflict resolved, `PortChanged`), if it moved. */
  readonly movedFrom: number | null;
}

/**
 * A port outside this app's leases that the table keeps an eye on: one a service was pushed off
 * (`PortChanged`, `PortConflict`), or one asked for with `watchPorts`.
 *
 * @example
 * ```tsx
 * for (const p of watched) console.log(p.port, p.owner?.pid, p.owner?.orphan, p.takenFrom);
 * ```
 */
export interface WatchedPort {
  readonly port: number;
  /** Who holds it (`get_port_owner`); `null` when it is free. */
  readonly owner: PortOwner | null;
  /** The service of this app that lost it to a conflict, if that is why it is here. */
  readonly takenFrom: string | null;
  /** When the conflict was seen (Unix ms), for ports taken from a service. */
  readonly since: number | null;
}

/**
 * What {@link usePortStats} returns.
 *
 * @example
 * ```tsx
 * const { rows, watched, updatedAt, error, refresh } = usePortStats();
 * ```
 */
export interface PortStats {
  /** This app's leases, by service name. */
  readonly rows: readonly PortRow[];
  /** Ports taken from this app's services, and the `watchPorts`, with who holds them. */
  readonly watched: readonly WatchedPort[];
  /** Whether the first answer is still awaited. */
  readonly loading: boolean;
  /** The last refresh's error, if it failed. */
  readonly error: Error | null;
  /** When the data was last refreshed (Unix ms). */
  readonly updatedAt: number | null;
  /** Refresh now. */
  readonly refresh: () => Promise<void>;
}

/**
 * Options of {@link usePortStats}.
 *
 * @example
 * ```tsx
 * usePortStats({ refreshInterval: 1000, watchPorts: [5173, 8080] });
 * ```
 */
export interface UsePortStatsOptions {
  /** Refresh every this many ms (and on every port event and lease change); 0: only then. Default 2000. */
  refreshInterval?: number;
  /** More ports to show, with who holds them (e.g. yesterday's dev server: an orphan). */
  watchPorts?: readonly number[];
  /** Time-out of each call. Default 5000 ms. */
  timeoutMs?: number;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

interface Taken {
  readonly service: string;
  readonly since: number;
}

const EMPTY: Omit<PortStats, 'refresh'> = { rows: [], watched: [], loading: true, error: null, updatedAt: null };

/**
 * The data behind {@link PortTable}: this app's leases (`get_port_stats`) with who listens on each
 * port (`get_port_owner`), and the ports its services were pushed off, with who took them. Kept
 * fresh on every port event, lease change and reconnect, and every `refreshInterval` ms.
 *
 * @example
 * ```tsx
 * function Ports() {
 *   const { rows } = usePortStats();
 *   return <ul>{rows.map((r) => <li key={r.info.service}>{r.info.service}: {r.info.port}</li>)}</ul>;
 * }
 * ```
 */
export function usePortStats(options: UsePortStatsOptions = {}): PortStats {
  const { client } = usePortd(options.portd);
  const refreshInterval = options.refreshInterval ?? 2000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const watchKey = (options.watchPorts ?? []).join(',');
  const [state, setState] = useState<Omit<PortStats, 'refresh'>>(EMPTY);
  const taken = useRef(new Map<number, Taken>());
  const moved = useRef(new Map<string, number>());
  const running = useRef<Promise<void> | null>(null);
  const again = useRef(false);
  const alive = useRef(true);

  const load = useCallback(async (): Promise<void> => {
    const call = { timeoutMs };
    try {
      const stats = await client.getPortStats(call);
      const infos = Object.values(stats)
        .filter((i): i is PortInfo => i !== undefined)
        .sort((a, b) => a.service.localeCompare(b.service));
      const leased = new Set(infos.map((i) => i.port));
      const extra = watchKey === '' ? [] : watchKey.split(',').map(Number);
      const others = [...new Set([...taken.current.keys(), ...extra])].filter((p) => !leased.has(p)).sort((a, b) => a - b);
      const [owners, otherOwners] = await Promise.all([
        Promise.all(infos.map((i) => client.getPortOwner(i.port, call))),
        Promise.all(others.map((p) => client.getPortOwner(p, call))),
      ]);
      const rows = infos.map((info, i) => ({
        info,
        owner: owners[i]?.pid != null ? (owners[i] ?? null) : null,
        movedFrom: moved.current.get(info.service) ?? null,
      }));
      const watched = others.map((port, i) => {
        const t = taken.current.get(port);
        return { port, owner: otherOwners[i] ?? null, takenFrom: t?.service ?? null, since: t?.since ?? null };
      });
      // A port taken from a service and free again needs no more watching.
      for (const w of watched) if (w.owner === null && w.takenFrom !== null) taken.current.delete(w.port);
      if (alive.current) setState({ rows, watched, loading: false, error: null, updatedAt: Date.now() });
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      if (alive.current) setState((s) => ({ ...s, loading: false, error: err }));
    }
  }, [client, timeoutMs, watchKey]);

  // One refresh at a time; asked for during one, another follows it.
  const refresh = useCallback((): Promise<void> => {
    if (running.current) {
      again.current = true;
      return running.current;
    }
    const run = (async () => {
      do {
        again.current = false;
        await load();
      } while (again.current && alive.current);
    })().finally(() => {
      running.current = null;
    });
    running.current = run;
    return run;
  }, [load]);

  useEffect(() => {
    alive.current = true;
    const onEvent = (e: PortEvent) => {
      if (e.type === 'PortChanged' && e.service != null && e.old_port != null) {
        moved.current.set(e.service, e.old_port);
        taken.current.set(e.old_port, { service: e.service, since: e.timestamp });
      } else if (e.type === 'PortConflict' && e.service != null && e.port != null) {
        taken.current.set(e.port, { service: e.service, since: e.timestamp });
      } else if (e.type === 'PortAvailable' && e.port != null) {
        taken.current.delete(e.port);
      }
      void refresh();
    };
    const offs = [
      client.onEvent(onEvent),
      client.onLeaseChange(() => void refresh()),
      client.onReady(() => void refresh()),
    ];
    void refresh();
    const timer = refreshInterval > 0 ? setInterval(() => void refresh(), refreshInterval) : undefined;
    return () => {
      alive.current = false;
      for (const off of offs) off();
      if (timer) clearInterval(timer);
    };
  }, [client, refresh, refreshInterval]);

  return { ...state, refresh };
}
