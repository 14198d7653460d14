/**
 * The Node transport: the sidecar as a `child_process` (Electron's main process, scripts, tests).
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { LineSplitter, TransportHub, type Transport, type TransportFactory } from '../transport.js';

/**
 * How to start the sidecar.
 *
 * @example
 * ```ts
 * const options: NodeTransportOptions = {
 *   command: path.join(process.resourcesPath, 'portd'),
 *   args: ['serve', '--app-id', 'my-app'],
 *   onStderr: (line) => log.debug('[portd]', line),
 * };
 * ```
 */
export interface NodeTransportOptions {
  /** The sidecar executable (the frozen `portd`, or a Python interpreter). */
  command: string;
  /** Its arguments. Default `['serve']`. */
  args?: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** The sidecar's log lines (stderr). Default: read and dropped (never left to fill the pipe). */
  onStderr?: (line: string) => void;
}

/**
 * Start the sidecar now; the transport of that one process.
 *
 * @example
 * ```ts
 * const transport = spawnNodeTransport({ command: 'portd' });
 * transport.onLine((line) => console.log(line)); // {"jsonrpc":"2.0","method":"ready",…}
 * ```
 */
export function spawnNodeTransport(options: NodeTransportOptions): Transport {
  const hub = new TransportHub();
  let child: ChildProcess;
  try {
    child = spawn(options.command, [...(options.args ?? ['serve'])], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
  } catch (error) {
    const err = error instanceof Error ? error : new Error(String(error));
    queueMicrotask(() => hub.close({ reason: 'spawn-failed', code: null, signal: null, error: err }));
    return {
      pid: undefined,
      send: () => {
        throw err;
      },
      onLine: hub.onLine,
      onClose: hub.onClose,
      close: () => undefined,
      kill: () => undefined,
    };
  }

  let spawned = false;
  child.once('spawn', () => {
    spawned = true;
  });
  child.stdout?.on('data', (chunk: Buffer) => hub.splitter.push(chunk));
  const stderr = options.onStderr;
  if (stderr) {
    const split = new LineSplitter(stderr);
    child.stderr?.on('data', (chunk: Buffer) => split.push(chunk));
  } else {
    child.stderr?.resume();
  }
  // Writing to a dead child's stdin gives EPIPE: the close below reports the death.
  child.stdin?.on('error', () => undefined);
  child.once('error', (error) => {
    if (!spawned) hub.close({ reason: 'spawn-failed', code: null, signal: null, error });
  });
  // 'close' (not 'exit'): stdout has been read to its end, so no line is lost.
  child.once('close', (code, signal) => {
    if (hub.splitter.pending !== '') hub.splitter.flush();
    hub.close({ reason: 'exit', code, signal });
  });

  return {
    get pid() {
      return child.pid;
    },
    send(line: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const stdin = child.stdin;
        if (!stdin || stdin.destroyed || !stdin.writable) {
          reject(new Error('the sidecar stdin is closed'));
          return;
        }
        stdin.write(`${line}\n`, (error) => (error ? reject(error) : resolve()));
      });
    },
    onLine: hub.onLine,
    onClose: hub.onClose,
    close(): void {
      child.stdin?.end();
    },
    kill(): void {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * A {@link TransportFactory} that spawns the sidecar with `child_process.spawn` (stdio pipes,
 * `windowsHide`), once per connection.
 *
 * @example
 * ```ts
 * // Electron main process
 * import { PortdClient } from 'portd';
 * import { nodeTransport } from 'portd/transports/node';
 *
 * const client = new PortdClient(nodeTransport({ command: path.join(process.resourcesPath, 'portd') }));
 * const port = await client.allocatePort('renderer-dev-server');
 * ```
 */
export function nodeTransport(options: NodeTransportOptions): TransportFactory {
  return () => spawnNodeTransport(options);
}
