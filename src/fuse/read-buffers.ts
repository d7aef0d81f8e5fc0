// Buffers that READ replies are read into, kept and reused.
//
// A fresh Buffer per READ is a fresh malloc of up to 1 MiB (max_pages), and
// glibc gives blocks that large back to the kernel when they are freed
// (mmap'd chunks, or a trimmed heap top), so every read faulted its
// destination pages in again inside pread(2): 22 000 page faults for a
// 1 GiB sequential read, 89 000 of the 154 000 of a cold `tar` of the bench
// store, at ~30 us each on the bench VM (docs/DESIGN.md, "Kernel caches").
// A kept buffer is faulted in once.
//
// Contract: a buffer from take() is given back with give() only once
// nothing refers to its bytes any more, i.e. after its reply has been
// written (write(2) to /dev/fuse copies synchronously) or the read failed.

export class ReadBuffers {
  private readonly free: Buffer[] = [];

  /**
   * size: the largest read (every kept buffer has this size); keep: how many
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
