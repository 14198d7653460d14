/**
 * A set of listeners. A listener that throws does not stop the others; its error is reported
 * asynchronously (as an uncaught error) so that it is not silently lost.
 *
 * @internal
 */
export class Listeners<A extends unknown[]> {
  readonly #set = new Set<(...args: A) => void>();

  add(listener: (...args: A) => void): () => void {
    this.#set.add(listener);
    return () => {
      this.#set.delete(listener);
    };
  }

  delete(listener: (...args: A) => void): void {
    this.#set.delete(listener);
  }

  get size(): number {
    return this.#set.size;
  }

  emit(...args: A): void {
    for (const listener of [...this.#set]) {
      try {
        listener(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  clear(): void {
    this.#set.clear();
  }
}

/**
 * A tiny external store for `useSyncExternalStore`: an immutable snapshot, replaced on change.
 *
 * @internal
 */
export class Store<S> {
  #snapshot: S;
  readonly #listeners = new Listeners<[]>();

  constructor(initial: S) {
    this.#snapshot = initial;
  }

  readonly subscribe = (listener: () => void): (() => void) => this.#listeners.add(listener);

  readonly getSnapshot = (): S => this.#snapshot;

  update(patch: Partial<S>): void {
    let changed = false;
    for (const key of Object.keys(patch) as (keyof S)[]) {
      if (!Object.is(this.#snapshot[key], patch[key])) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    this.#snapshot = { ...this.#snapshot, ...patch };
    this.#listeners.emit();
  }
}
