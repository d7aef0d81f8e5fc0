// Large buffers the session uses over and over: what READ replies are read
// into, and what large WRITE requests are read from /dev/fuse into.
//
// A new Buffer of up to 1 MiB (max_pages) is a new malloc, and glibc gives
// blocks that large back to the kernel when they are freed (mmap'd chunks,
// or a trimmed heap top), so each use faulted its pages in again: pread(2)
// into a new READ buffer made 22 000 page faults for a 1 GiB sequential
// read, 89 000 of the 154 000 of a cold `tar` of the bench store; copying
// each 1 MiB WRITE out of the read buffer made ~100 000 for a 1 GiB write
// without passthrough. ~30 us a fault on the bench VM (docs/DESIGN.md,
// "Kernel caches"). A kept buffer is faulted in once.
//
// Contract: a buffer from take() is given back with give() only once
// nothing refers to its bytes any more: a READ reply written (write(2) to
// /dev/fuse copies synchronously) or its read failed; a WRITE request
// answered.

export class BufferPool {
  private readonly free: Buffer[] = [];

  /**
   * size: the size of every kept buffer (the largest use); keep: how many
   * are kept when more were in use at once (each stays resident).
   */
  constructor(
    private readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of at least n bytes: a kept one when one is free. */
  take(n: number): Buffer {
    if (n > this.size) return Buffer.allocUnsafeSlow(n);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Gives back a buffer from take() (see the contract above). */
  give(b: Buffer): void {
    if (b.length === this.size && this.free.length < this.keep) this.free.push(b);
  }
}
