// Group commit of deferred copy-ups (copyup.ts): the copies made by open(2)
// must be on disk before they are renamed into place, and one fsync per
// file forces one journal commit per file. On ext4 every commit also stalls
// the metadata calls the daemon makes meanwhile on the same filesystem (the
// next copy's create, mkdir, chown...), so per-file syncing cost the main
// thread more than the flush itself. Queued copies are instead synced
// together, once the first has waited `delayMs` or `maxBatch` are queued,
// and then committed (renamed) one after the other: concurrent fsyncs of
// one filesystem share a journal commit.
//
// A copy someone is waiting for (a stat, a second open, fsync(2), an
// unmount) is flushed at once, with whatever else is queued: urge().

export interface Deferred {
  /** Makes the copy durable (fsync). */
  sync(): Promise<void>;
  /** Renames it into place (or drops it); called once sync succeeded. */
  commit(): Promise<void>;
  /** Told when sync or commit failed; the copy is not in place. */
  failed(err: unknown): void;
}

export class GroupCommit {
  private queue: Array<{ job: Deferred; done: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly delayMs = 5,
    private readonly maxBatch = 64,
  ) {}

  /** Queues a copy; the promise settles (never rejects) once it is committed or failed. */
  add(job: Deferred): Promise<void> {
    return new Promise<void>((done) => {
      this.queue.push({ job, done });
      if (this.queue.length >= this.maxBatch) this.urge();
      else this.timer ??= setTimeout(() => this.urge(), this.delayMs);
    });
  }

  /** Commits everything queued now, without waiting for the batch to fill. */
  urge(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing !== undefined || this.queue.length === 0) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      // Queued while flushing: their turn now (someone may be waiting).
      if (this.queue.length > 0) this.urge();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    // All synced concurrently (one journal commit for the lot), then each
    // renamed into place: never before its own data is on disk.
    const synced = await Promise.allSettled(batch.map((b) => b.job.sync()));
    for (let i = 0; i < batch.length; i++) {
      const { job, done } = batch[i];
      const s = synced[i];
      try {
        if (s.status === 'rejected') throw s.reason;
        await job.commit();
      } catch (err) {
        job.failed(err);
      } finally {
        done();
      }
    }
  }
}
