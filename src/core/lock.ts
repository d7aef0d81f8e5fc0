// A FIFO mutex for the overlay's namespace mutations. Holding it across the
// awaits of one operation makes every create/remove/rename/copy-up commit
// atomic with respect to the others: each decides on a fresh resolution and
// acts on it before the next one looks. Reads never take it.
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    // The next waiter starts when this one settles, whatever the outcome.
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
