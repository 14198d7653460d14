/**
 * Errors: {@link ResponseError} when the sidecar answered with a JSON-RPC error (one subclass per
 * code), {@link ConnectionError} when there was no answer to be had.
 *
 * @module
 */
import type { PortdErrorCode } from './protocol.gen.js';

/**
 * Base class of every error this package throws.
 *
 * @example
 * ```ts
 * try { await client.allocatePort('vite'); }
 * catch (e) { if (e instanceof PortdError) console.warn('portd:', e.message); }
 * ```
 */
export class PortdError extends Error {
  override name = 'PortdError';
}

/**
 * The `error` member of a JSON-RPC response.
 *
 * @example
 * ```ts
 * const e: JsonRpcErrorObject = { code: -32002, message: "no lease for service 'nope'" };
 * ```
 */
export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * The sidecar answered a call with a JSON-RPC error. `code`, `message` and `data` are the
 * sidecar's; `instanceof` picks the kind ({@link UnknownServiceError}, {@link InvalidParamsError}…).
 *
 * @example
 * ```ts
 * try {
 *   await client.getPortInfo('nope');
 * } catch (e) {
 *   if (e instanceof UnknownServiceError) console.log(e.code, e.message); // -32002 "no lease for service 'nope'"
 *   else if (e instanceof ResponseError) console.log('other error', e.code, e.data);
 * }
 * ```
 */
export class ResponseError extends PortdError {
  override name = 'ResponseError';
  /** The JSON-RPC error code (the schema's `x-error-codes`: `PORTD_ERROR_CODES`). */
  readonly code: number;
  /** The sidecar's `data`, e.g. the validation errors of -32602. */
  readonly data: unknown;
  /** The method that was called, when known. */
  readonly method: string | undefined;

  constructor(error: JsonRpcErrorObject, method?: string) {
    super(error.message);
    this.code = error.code;
    this.data = error.data;
    this.method = method;
  }

  /**
   * The subclass for the error's code (a plain `ResponseError` for a code not in the schema).
   *
   * @example
   * ```ts
   * const e = ResponseError.from({ code: -32002, message: 'no lease' });
   * e instanceof UnknownServiceError; // true
   * ```
   */
  static from(error: JsonRpcErrorObject, method?: string): ResponseError {
    const Ctor = (ERROR_CLASSES as Partial<Record<number, typeof ResponseError>>)[error.code];
    return Ctor ? new Ctor(error, method) : new ResponseError(error, method);
  }
}

/**
 * -32700: the sidecar could not parse what it was sent.
 * @example
 * ```ts
 * if (e instanceof ParseError) reportBug(e);
 * ```
 */
export class ParseError extends ResponseError {
  override name = 'ParseError';
}
/**
 * -32600: not a valid JSON-RPC request (or a message over 1 MiB).
 * @example
 * ```ts
 * if (e instanceof InvalidRequestError) reportBug(e);
 * ```
 */
export class InvalidRequestError extends ResponseError {
  override name = 'InvalidRequestError';
}
/**
 * -32601: no such method (an older sidecar?).
 * @example
 * ```ts
 * if (e instanceof MethodNotFoundError) console.warn('update the portd sidecar');
 * ```
 */
export class MethodNotFoundError extends ResponseError {
  override name = 'MethodNotFoundError';
}
/**
 * -32602: the params failed validation; `data` is the sidecar's list of errors.
 * @example
 * ```ts
 * try { await client.isPortAvailable(70000); }
 * catch (e) { if (e instanceof InvalidParamsError) console.log(e.data); }
 * ```
 */
export class InvalidParamsError extends ResponseError {
  override name = 'InvalidParamsError';
}
/**
 * -32603: the sidecar failed inside (its trace is on its stderr).
 * @example
 * ```ts
 * if (e instanceof InternalError) console.error('portd internal error');
 * ```
 */
export class InternalError extends ResponseError {
  override name = 'InternalError';
}
/**
 * -32001: no port could be found for the service.
 * @example
 * ```ts
 * try { await client.allocatePort('api'); }
 * catch (e) { if (e instanceof NoPortAvailableError) widenRange(); }
 * ```
 */
export class NoPortAvailableError extends ResponseError {
  override name = 'NoPortAvailableError';
}
/**
 * -32002: the service has no lease.
 * @example
 * ```ts
 * try { await client.getPortInfo('api'); }
 * catch (e) { if (e instanceof UnknownServiceError) await client.allocatePort('api'); }
 * ```
 */
export class UnknownServiceError extends ResponseError {
  override name = 'UnknownServiceError';
}
/**
 * -32003: the OS or the sidecar's rules refused (EACCES, another user's process…).
 * @example
 * ```ts
 * if (e instanceof PermissionDeniedError) console.warn(e.message);
 * ```
 */
export class PermissionDeniedError extends ResponseError {
  override name = 'PermissionDeniedError';
}
/**
 * -32004: the shared registry could not be used.
 * @example
 * ```ts
 * if (e instanceof RegistryUnavailableError) console.warn('registry:', e.message);
 * ```
 */
export class RegistryUnavailableError extends ResponseError {
  override name = 'RegistryUnavailableError';
}
/**
 * -32005: the port plan is invalid.
 * @example
 * ```ts
 * if (e instanceof InvalidPortPlanError) console.error(e.data);
 * ```
 */
export class InvalidPortPlanError extends ResponseError {
  override name = 'InvalidPortPlanError';
}
/**
 * -32006: the sidecar is shutting down.
 * @example
 * ```ts
 * if (e instanceof ShuttingDownError) await resilience.forceReconnect();
 * ```
 */
export class ShuttingDownError extends ResponseError {
  override name = 'ShuttingDownError';
}

/**
 * The subclass for each code of the schema's `x-error-codes`. Typed against the generated
 * {@link PortdErrorCode}: a code added to the protocol fails type-checking here until it has a class.
 *
 * @example
 * ```ts
 * ERROR_CLASSES[-32002] === UnknownServiceError; // true
 * ```
 */
export const ERROR_CLASSES = {
  [-32700]: ParseError,
  [-32600]: InvalidRequestError,
  [-32601]: MethodNotFoundError,
  [-32602]: InvalidParamsError,
  [-32603]: InternalError,
  [-32001]: NoPortAvailableError,
  [-32002]: UnknownServiceError,
  [-32003]: PermissionDeniedError,
  [-32004]: RegistryUnavailableError,
  [-32005]: InvalidPortPlanError,
  [-32006]: ShuttingDownError,
} as const satisfies Record<PortdErrorCode, typeof ResponseError>;

/**
 * Why no answer could be had.
 *
 * @example
 * ```ts
 * const retryable = (r: ConnectionErrorReason) => r !== 'spawn-failed';
 * ```
 */
export type ConnectionErrorReason = 'closed' | 'timeout' | 'spawn-failed';

/**
 * No answer could be had: the sidecar is gone or went away mid-call (`closed`), did not answer in
 * time (`timeout`), or could not be started (`spawn-failed`).
 *
 * @example
 * ```ts
 * try { await client.performHealthCheck({ timeoutMs: 5000 }); }
 * catch (e) {
 *   if (e instanceof ConnectionError && e.reason === 'timeout') console.warn('portd is slow');
 * }
 * ```
 */
export class ConnectionError extends PortdError {
  override name = 'ConnectionError';
  readonly reason: ConnectionErrorReason;

  constructor(reason: ConnectionErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}
