// The page: one portd instance. In `vite dev` its sidecar runs in the dev server (portd/vite,
// over Vite's WebSocket); in a production build, inside Tauri, the shell plugin spawns it. In a
// build `import.meta.hot` is undefined, so the browser transport is not even bundled.
import { Portd, type PortConfigUpdate } from 'portd';
import 'portd/react/styles.css';
import { browserTransport } from 'portd/transports/browser';
import { tauriTransport } from 'portd/transports/tauri';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Dashboard } from './Dashboard.js';
import './dashboard.css';

// `?range=20000-20100` leases from that range (the browser test keeps clear of other users).
const range = /^(\d+)-(\d+)$/.exec(new URLSearchParams(window.location.search).get('range') ?? '');
const portRange: PortConfigUpdate = range
  ? { preferred_port: Number(range[1]), port_range: [Number(range[1]), Number(range[2])] }
  : {};

const portd = new Portd({
  transport: import.meta.hot ? browserTransport() : tauriTransport(),
  serviceName: 'frontend',
  // A fast conflict scan: a dashboard shows conflicts as they happen.
  config: { app_id: 'portd-dashboard', conflict_scan_interval: 0.5, ...portRange },
});
window.addEventListener('pagehide', () => void portd.close());

const root = document.getElementById('root');
if (!root) throw new Error('no #root element');
createRoot(root).render(
  <StrictMode>
    <Dashboard portd={portd} services={['api', 'db']} />
  </StrictMode>,
);
