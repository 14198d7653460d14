/**
 * The Tauri transport: the sidecar as a Tauri `externalBin`, through `@tauri-apps/plugin-shell`.
 *
 * The app needs the shell plugin (`tauri-plugin-shell`), the binary in `bundle.externalBin`
 * (e.g. `binaries/portd`, built as `portd-<target-triple>`), and a capability allowing it:
 * `{ "identifier": "shell:allow-spawn", "allow": [{ "name": "binaries/portd", "sidecar": true, "args": true }] }`
 * plus `shell:allow-stdin-write` and `shell:allow-kill`.
 *
 * @module
 */
import { Command, type SpawnOptions } from '@tauri-apps/plugin-shell';
import { LineSplitter, TransportHub, type Transport, type TransportFactory } from '../transport.js';

/**
 * How to start the sidecar.
 *
 * @example
 * ```ts
 * const options: TauriTransportOptions = { program: 'binaries/portd', args: ['serve', '--app-id', 'infloWave'] };
 * ```
 */
export interface TauriTransportOptions {
  /** The sidecar's name as in `bundle.externalBin`. Default `'binaries/portd'`. */
  program?: string;
  /** Its arguments. Default `['serve']`. */
  args?: string[];
  /** `cwd`, `env`, `encoding` as the shell plugin takes them. */
  spawnOptions?: SpawnOptions;
  /** The sidecar's log lines (stderr). Default: dropped. */
  onStderr?: (line: string) => void;
  /** The plugin's `error` events (a failed wait or an undecodable line). Default: dropped. */
  onError?: (message: string) => void;
}

type Chunk = string | Uint8Array | readonly number[];

function bytes(chunk: Chunk): string | Uint8Array {
  return typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
}

function isCompleteJson(text: string): boolean {
  const t = text.trim();
  if (t === '' || (t[0] !== '{' && t[0] !== '[')) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

/**
 * Spawn the sidecar with `Command.sidecar(program, args)`; resolves with its transport.
 *
 * Each `Stdout` event of the plugin is one line (Tauri 2 keeps its `\n`; a payload without one
 * is taken as a whole line once it parses as JSON, so a plugin that strips newlines works too).
 * Writes go through `child.write(line + "\n")`; `kill()` is `child.kill()`. The plugin cannot
 * close stdin, so `close()` kills too — {@link PortdClient.close} sends `shutdown` first.
 *
 * @example
 * ```ts
 * const transport = await spawnTauriTransport({ program: 'binaries/portd' });
 * ```
 */
export async function spawnTauriTransport(options: TauriTransportOptions = {}): Promise<Transport> {
  const hub = new TransportHub();
  const program = options.program ?? 'binaries/portd';
  const args = options.args ?? ['serve'];
  const command = options.spawnOptions
    ? Command.sidecar(program, args, options.spawnOptions)
    : Command.sidecar(program, args);

  command.stdout.on('data', (chunk: Chunk) => {
    hub.splitter.push(bytes(chunk));
    if (isCompleteJson(hub.splitter.pending)) hub.splitter.flush();
  });
  const onStderr = options.onStderr;
  if (onStderr) {
    const split = new LineSplitter(onStderr);
    command.stderr.on('data', (chunk: Chunk) => {
      split.push(bytes(chunk));
      if (!split.pending.includes('\n') && split.pending !== '') split.flush();
    });
  }
  command.on('close', ({ code, signal }) => {
    if (hub.splitter.pending !== '') hub.splitter.flush();
    hub.close({ reason: 'exit', code, signal });
  });
  command.on('error', (message) => options.onError?.(message));

  const child = await command.spawn();
  let killed = false;
  const kill = async () => {
    if (killed || hub.closed) return;
    killed = true;
    await child.kill();
  };
  return {
    pid: child.pid,
    send: (line: string) => child.write(`${line}\n`),
    onLine: hub.onLine,
    onClose: hub.onClose,
    close: kill,
    kill,
  };
}

/**
 * A {@link TransportFactory} that spawns the sidecar through `@tauri-apps/plugin-shell`, once per
 * connection.
 *
 * @example
 * ```ts
 * import { configurePortd } from 'portd';
 * import { tauriTransport } from 'portd/transports/tauri';
 *
 * configurePortd({ transport: tauriTransport({ program: 'binaries/portd' }) });
 * ```
 */
export function tauriTransport(options: TauriTransportOptions = {}): TransportFactory {
  return () => spawnTauriTransport(options);
}
