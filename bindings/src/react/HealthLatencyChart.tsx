import { useEffect, useRef, useState, type ReactNode, type RefObject } from 'react';
import type { Portd } from '../portd.js';
import type { HealthStatus, SystemHealthStatus } from '../protocol.js';
import { usePortd } from './context.js';
import { cx, formatTime } from './format.js';

/**
 * One point of {@link HealthLatencyChart}.
 *
 * @example
 * ```ts
 * const s: LatencySample = { timestamp: Date.now(), latency: 12.5, status: 'healthy' };
 * ```
 */
export interface LatencySample {
  /** When the check finished (Unix ms). */
  readonly timestamp: number;
  /** Milliseconds. */
  readonly latency: number;
  readonly status: HealthStatus;
}

/**
 * Options of {@link useHealthLatency}.
 *
 * @example
 * ```tsx
 * const samples = useHealthLatency({ samples: 60, component: 'registry' });
 * ```
 */
export interface UseHealthLatencyOptions {
  /** Keep the last this many checks. Default 40. */
  samples?: number;
  /**
   * Chart this component's own latency (`'registry'`, `'network'`, …, as the sidecar measured
   * it). Default: the whole check's round trip, as the app saw it.
   */
  component?: string;
  /** Use this instance rather than the provider's or the default one. */
  portd?: Portd;
}

function sampleOf(status: SystemHealthStatus, roundTrip: number | null, component: string | undefined): LatencySample | null {
  if (component === undefined) {
    return roundTrip === null ? null : { timestamp: status.timestamp, latency: roundTrip, status: status.status };
  }
  const c = status.components.find((x) => x.component === component);
  return c?.latency != null ? { timestamp: c.timestamp, latency: c.latency, status: c.status } : null;
}

/**
 * The latency of the last health checks (from the health check service: run them with
 * `PortDiscoveryProvider`'s `healthCheckInterval` or `startHealthCheck`), oldest first.
 *
 * @example
 * ```tsx
 * function LastLatency() {
 *   const samples = useHealthLatency();
 *   const last = samples[samples.length - 1];
 *   return <span>{last ? `${last.latency.toFixed(1)} ms` : '—'}</span>;
 * }
 * ```
 */
export function useHealthLatency(options: UseHealthLatencyOptions = {}): readonly LatencySample[] {
  const { healthCheck } = usePortd(options.portd);
  const max = Math.max(2, options.samples ?? 40);
  const component = options.component;
  const [samples, setSamples] = useState<readonly LatencySample[]>(() => {
    const last = healthCheck.getLastHealthStatus();
    const first = last ? sampleOf(last, healthCheck.getHealthStats().lastLatency, component) : null;
    return first ? [first] : [];
  });
  useEffect(
    () =>
      healthCheck.addListener((status) => {
        const s = sampleOf(status, healthCheck.getHealthStats().lastLatency, component);
        if (s) setSamples((list) => [...list, s].slice(-max));
      }),
    [healthCheck, component, max],
  );
  return samples;
}

/**
 * Props of {@link HealthLatencyChart}.
 *
 * @example
 * ```tsx
 * <HealthLatencyChart samples={60} component="registry" title="Registry latency" />
 * ```
 */
export interface HealthLatencyChartProps extends UseHealthLatencyOptions {
  /** The heading. Default `'Health latency'` (or the component's name). */
  title?: string;
  /** The plot's height in pixels (its width is the container's). Default 140. */
  height?: number;
  className?: string;
}

/** A round axis maximum at or above `v` (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ). */
function niceCeil(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function ms(v: number): string {
  return v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`;
}

const PAD = { left: 40, right: 10, top: 10, bottom: 10 };

/** The rendered width of an element (kept current with ResizeObserver where there is one). */
function useWidth<E extends Element>(fallback: number): [RefObject<E | null>, number] {
  const ref = useRef<E>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const observer = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w !== undefined && w > 0) setWidth(Math.round(w));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

/**
 * A small live chart of health-check latency: one point per check (the last `samples`), the
 * newest on the right, unhealthy checks marked; the last value and min / average / max beside it.
 * Plain SVG, no chart library. Class names for CSS: `portd-chart`, `portd-chart__line`,
 * `portd-chart__area`, `portd-chart__dot` (`data-status`), `portd-chart__grid`,
 * `portd-chart__label`.
 *
 * @example
 * ```tsx
 * import { PortDiscoveryProvider, HealthLatencyChart } from 'portd/react';
 *
 * <PortDiscoveryProvider healthCheckInterval={2000}>
 *   <HealthLatencyChart samples={40} />
 * </PortDiscoveryProvider>
 * ```
 */
export function HealthLatencyChart({ title, height = 140, className, ...options }: HealthLatencyChartProps): ReactNode {
  const samples = useHealthLatency(options);
  // Drawn at its real size, so that lines, dots and labels keep their size at any width.
  const [svgRef, W] = useWidth<SVGSVGElement>(320);
  const H = Math.max(60, height);
  const capacity = Math.max(2, options.samples ?? 40);
  const values = samples.map((s) => s.latency);
  const last = samples[samples.length - 1];
  const top = niceCeil(Math.max(0, ...values) * 1.1);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  // Until the chart is full the points spread over its width; then the newest enters on the right.
  const step = plotW / Math.max(1, Math.min(capacity, samples.length) - 1);
  const x = (i: number) => (samples.length === 1 ? PAD.left + plotW : PAD.left + plotW - (samples.length - 1 - i) * step);
  const y = (v: number) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;
  const points = samples.map((s, i) => `${x(i).toFixed(1)},${y(s.latency).toFixed(1)}`);
  const area =
    samples.length > 1
      ? `M${x(0).toFixed(1)},${y(0).toFixed(1)} L${points.join(' L')} L${x(samples.length - 1).toFixed(1)},${y(0).toFixed(1)} Z`
      : '';
  const min = values.length ? Math.min(...values) : null;
  const max = values.length ? Math.max(...values) : null;
  const avg = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  const heading = title ?? (options.component ? `${options.component} latency` : 'Health latency');
  const label = last
    ? `${heading}: last ${ms(last.latency)}, min ${ms(min ?? 0)}, average ${ms(avg ?? 0)}, max ${ms(max ?? 0)} over ${samples.length} checks`
    : `${heading}: no check yet`;

  return (
    <figure className={cx('portd-panel portd-chart', className)} aria-label="portd health latency">
      <header className="portd-panel__header">
        <h2 className="portd-panel__title">{heading}</h2>
        <span className="portd-chart__value" data-status={last?.status ?? 'unknown'}>
          {last ? ms(last.latency) : '—'}
        </span>
      </header>
      <svg ref={svgRef} className="portd-chart__svg" viewBox={`0 0 ${W} ${H}`} height={H} role="img" aria-label={label}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line className="portd-chart__grid" x1={PAD.left} x2={W - PAD.right} y1={y(top * f)} y2={y(top * f)} />
            <text className="portd-chart__label" x={PAD.left - 6} y={y(top * f)} textAnchor="end" dominantBaseline="middle">
              {Number.isInteger(top * f) ? top * f : (top * f).toFixed(1)}
            </text>
          </g>
        ))}
        {area ? <path className="portd-chart__area" d={area} /> : null}
        {samples.length > 1 ? <polyline className="portd-chart__line" points={points.join(' ')} /> : null}
        {samples.map((s, i) => (
          <circle
            key={s.timestamp + i / 1000}
            className="portd-chart__dot"
            data-status={s.status}
            cx={x(i)}
            cy={y(s.latency)}
            r={i === samples.length - 1 || s.status !== 'healthy' ? 3.5 : 2.2}
          >
            <title>{`${formatTime(s.timestamp)}: ${ms(s.latency)} (${s.status})`}</title>
          </circle>
        ))}
        {samples.length === 0 ? (
          <text className="portd-chart__label" x={PAD.left + plotW / 2} y={PAD.top + plotH / 2} textAnchor="middle">
            waiting for the first check…
          </text>
        ) : null}
      </svg>
      <figcaption className="portd-chart__caption">
        {min !== null && max !== null && avg !== null ? (
          <>
            min {ms(min)} · avg {ms(avg)} · max {ms(max)} <span className="portd-muted">· {samples.length} checks, ms</span>
          </>
        ) : (
          <span className="portd-muted">No check yet.</span>
        )}
      </figcaption>
    </figure>
  );
}
