// The browser test's helpers: Debian's Chromium through playwright-core (no browser download),
// and what a process listens on (from /proc, Linux).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { BINDINGS_DIR } from './sidecar.js';

export const CHROMIUM = process.env['PORTD_CHROMIUM'] ?? '/usr/bin/chromium';

/** Install Debian's Chromium with apt when it is missing (scripts/ensure-chromium.sh). */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  execFileSync('bash', [join(BINDINGS_DIR, 'scripts', 'ensure-chromium.sh')], { stdio: 'inherit', timeout: 900_000 });
}

/** Headless Chromium with a fresh profile in `userDataDir`, and none of its background traffic. */
export function launchChromium(userDataDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 900 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The inodes of the TCP sockets in LISTEN state and of every bound UDP socket, with their ports. */
function boundSockets(): Map<string, number> {
  const found = new Map<string, number>();
  for (const file of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const state = cols[3];
      const inode = cols[9];
      if (!local || !state || !inode) continue;
      if (file.startsWith('tcp') && state !== '0A') continue; // 0A: LISTEN
      const port = Number.parseInt(local.split(':').pop() ?? '', 16);
      found.set(inode, port);
    }
  }
  return found;
}

/** The ports a process listens on (TCP) or has bound (UDP). */
export function listeningPorts(pid: number): number[] {
  const bound = boundSockets();
  const ports = new Set<number>();
  const fdDir = `/proc/${pid}/fd`;
  for (const fd of readdirSync(fdDir)) {
    let target: string;
    try {
      target = readlinkSync(join(fdDir, fd));
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const port = inode === undefined ? undefined : bound.get(inode);
    if (port !== undefined) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}
