/**
 * The seam between {@link PortdClient} and a process runtime. A transport carries NDJSON lines to
 * and from one running sidecar; it knows nothing of JSON-RPC.
 *
 * @module
 */

/**
 * Why a transport ended.
 *
 * @example
 * ```ts
 * transport.onClose((info) => {
 *   if (info.reason === 'spawn-failed') console.error('portd did not start:', info.error);
 * });
 * ```
 */
export interface TransportCloseInfo {
  /** `exit`: the process ended; `spawn-failed`: it never started; `error`: the pipe broke. */
  readonly reason: 'exit' | 'spawn-failed' | 'error';
  /** Exit code, when the process exited by itself. */
  readonly code: number | null;
  /** The signal that ended it (name in Node, number in Tauri), when one did. */
  readonly signal: string | number | null;
  /** What went wrong, for `spawn-failed` and `error`. */
  readonly error?: Error;
}

/**
 * One running sidecar, seen as lines of text. Implementations: {@link "transports/node".nodeTransport}
 * (Node's `child_process`, for Electron's main process and scripts) and
 * {@link "transports/tauri".tauriTransport} (`Command.sidecar` from `@tauri-apps/plugin-shell`).
 *
 * @example
 * ```ts
 * // A transport over anything that moves lines, e.g. a WebSocket bridge:
 * const transport: Transport = {
 *   pid: undefined,
 *   send: (line) => socket.send(line),
 *   onLine: (fn) => { socket.addEventListener('message', (e) => fn(String(e.data))); return () => {}; },
 *   onClose: (fn) => { socket.addEventListener('close', () => fn({ reason: 'exit', code: 0, signal: null })); return () => {}; },
 *   close: () => socket.close(),
 *   kill: () => socket.close(),
 * };
 * ```
 */
export interface Transport {
  /** The sidecar's process id, when the runtime knows it. */
  readonly pid: number | undefined;
  /** Write one message (a JSON text without the newline; the transport adds `\n`). */
  send(line: string): void | Promise<void>;
  /** Called with each line the sidecar writes to stdout, without its line ending. */
  onLine(listener: (line: string) => void): () => void;
  /** Called once, when the process is gone (or never started). */
  onClose(listener: (info: TransportCloseInfo) => void): () => void;
  /** Ask the sidecar to stop: end its stdin where the runtime can (the sidecar then exits 0). */
  close(): void | Promise<void>;
  /** Stop the sidecar now (SIGKILL or the runtime's equivalent). */
  kill(): void | Promise<void>;
}

/**
 * Starts a sidecar and returns its transport. {@link PortdClient} calls it once per connection, so
 * a reconnect spawns a fresh process.
 *
 * @example
 * ```ts
 * const factory: TransportFactory = nodeTransport({ command: '/opt/app/portd' });
 * const client = new PortdClient(factory);
 * ```
 */
export type TransportFactory = () => Transport | Promise<Transport>;

/**
 * Splits a byte or text stream into lines (`\n`, tolerating `\r\n`), skipping blank lines.
 *
 * @example
 * ```ts
 * const split = new LineSplitter((line) => console.log(line));
 * split.push('{"a":1}\n{"b"');
 * split.push(':2}\n'); // logs {"a":1} then {"b":2}
 * ```
 */
export class LineSplitter {
  #buffer = '';
  readonly #decoder = new TextDecoder('utf-8');
  readonly #onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  /**
   * Feed a chunk (text, or UTF-8 bytes that may end mid-character).
   *
   * @example
   * ```ts
   * child.stdout.on('data', (chunk: Buffer) => splitter.push(chunk));
   * ```
   */
  push(chunk: string | Uint8Array): void {
    this.#buffer += typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    let nl = this.#buffer.indexOf('\n');
    while (nl !== -1) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#emit(line);
      nl = this.#buffer.indexOf('\n');
    }
  }

  /** What is buffered after the last newline. */
  get pending(): string {
    return this.#buffer;
  }

  /**
   * Emit what is buffered as a line, as if a newline had come.
   *
   * @example
   * ```ts
   * child.on('close', () => splitter.flush());
   * ```
   */
  flush(): void {
    const rest = this.#buffer + this.#decoder.decode();
    this.#buffer = '';
    this.#emit(rest);
  }

  #emit(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() !== '') this.#onLine(line);
  }
}

/**
 * The listener bookkeeping every transport needs: lines and the close that arrive before anyone
 * listens are kept and handed to the first listener, and close is reported exactly once.
 *
 * @example
 * ```ts
 * const hub = new TransportHub();
 * child.stdout.on('data', (chunk) => hub.splitter.push(chunk));
 * child.on('exit', (code) => hub.close({ reason: 'exit', code, signal: null }));
 * return { pid, send, close, kill, onLine: hub.onLine, onClose: hub.onClose };
 * ```
 */
export class TransportHub {
  readonly #lines = new Set<(line: string) => void>();
  readonly #closes = new Set<(info: TransportCloseInfo) => void>();
  #early: string[] = [];
  #closed: TransportCloseInfo | undefined;

  /** A splitter that delivers into this hub. */
  readonly splitter = new LineSplitter((line) => this.line(line));

  /** Whether the process has been reported gone. */
  get closed(): TransportCloseInfo | undefined {
    return this.#closed;
  }

  /**
   * Deliver one line (kept until the first listener when none is there yet).
   *
   * @example
   * ```ts
   * hub.line('{"jsonrpc":"2.0","method":"ready","params":{…}}');
   * ```
   */
  line(line: string): void {
    if (this.#lines.size === 0) {
      this.#early.push(line);
      return;
    }
    for (const fn of [...this.#lines]) fn(line);
  }

  /**
   * Report the process gone (only the first report counts).
   *
   * @example
   * ```ts
   * child.on('close', (code, signal) => hub.close({ reason: 'exit', code, signal }));
   * ```
   */
  close(info: TransportCloseInfo): void {
    if (this.#closed) return;
    this.#closed = info;
    for (const fn of [...this.#closes]) fn(info);
  }

  readonly onLine = (listener: (line: string) => void): (() => void) => {
    this.#lines.add(listener);
    if (this.#early.length > 0) {
      const early = this.#early;
      this.#early = [];
      for (const line of early) listener(line);
    }
    return () => {
      this.#lines.delete(listener);
    };
  };

  readonly onClose = (listener: (info: TransportCloseInfo) => void): (() => void) => {
    this.#closes.add(listener);
    const closed = this.#closed;
    if (closed) queueMicrotask(() => listener(closed));
    return () => {
      this.#closes.delete(listener);
    };
  };
}
