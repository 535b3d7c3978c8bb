/**
 * Unbounded event queues and listener sets: the client routes every event as it arrives, so a
 * slow consumer must never hold up the socket (the same rule as the Python SDK's channels).
 */

/** An async-iterable queue that never blocks the producer. */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<(result: IteratorResult<T>) => void> = [];
  private closed = false;

  constructor(private readonly onReturn?: () => void) {}

  push(item: T): void {
    if (this.closed) {
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) {
      waiter({ value: undefined, done: true });
    }
  }

  get size(): number {
    return this.items.length;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      return Promise.resolve({ value: this.items.shift()!, done: false });
    }
    if (this.closed) {
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    this.items.length = 0;
    this.onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/** Fan-out to listeners and live queues; `subscribe` sees events from the moment it is called. */
export class Fanout<T> {
  private readonly listeners = new Set<(item: T) => void>();
  private readonly queues = new Set<AsyncQueue<T>>();

  on(listener: (item: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribe(): AsyncQueue<T> {
    const queue: AsyncQueue<T> = new AsyncQueue<T>(() => this.queues.delete(queue));
    this.queues.add(queue);
    return queue;
  }

  emit(item: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(item);
      } catch (error) {
        // A game's listener throwing must not break routing for the others.
        console.error("entity-bridge: event listener failed", error);
      }
    }
    for (const queue of this.queues) {
      queue.push(item);
    }
  }

  close(): void {
    for (const queue of this.queues) {
      queue.close();
    }
    this.queues.clear();
  }
}
