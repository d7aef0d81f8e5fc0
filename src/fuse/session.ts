// A FUSE session on /dev/fuse: reads requests, hands each to the overlay, and
// writes the reply. This is translation only; every decision is in src/core.
// Contract: nothing thrown by the overlay crosses this boundary. Filesystem
// errors become their errno; anything else (a bug) is reported through
// onUnexpected and answered with EIO.
//
// Requests are read on the main thread when libuv reports /dev/fuse readable
// (non-blocking reads, no threadpool hop), and answered as their promises
// settle, in any order: the kernel matches replies by `unique`. Layer I/O
// that may stall (layers not on a local filesystem, large reads) runs on the
// threadpool, so a stalled layer delays only the requests that touch it.
import { constants as fsc, write, writeSync, writevSync } from 'fs';
import { constants } from 'os';
import { native, type PollHandle } from '../native';
import { hasCode, isUnexpected, toErrno } from '../core/errors';
import type { Caller, Overlay, SetAttr } from '../core/overlay';
import { baseName, childPath, parentOf, type MergedPath } from '../core/paths';
import { IdMap } from '../core/idmap';
import { isDir, type Stat } from '../core/stat';
import type { TimeSpec } from '../core/layer';
import { describe } from './describe';
import { Latencies } from './latency';
import { NodeTable } from './nodes';
import { Passthrough } from './passthrough';
import { BufferPool } from './buffer-pool';
import type { Recorder, RequestStart } from '../trace/recorder';
import { errnoName, type TraceRecord } from '../trace/record';
import * as P from './protocol';

export interface SessionOptions {
  /** Seconds the kernel may cache a name -> node mapping. */
  entryTimeout: number;
  /** Seconds the kernel may cache attributes. */
  attrTimeout: number;
  /** Seconds the kernel may cache "no such name"; 0 sends plain ENOENT. */
  negativeTimeout: number;
  /**
   * Let the kernel keep data and directory listings across opens (FUSE's
   * auto_cache: a file's pages are kept while its mtime and size are
   * unchanged; directory listings are cached and opendir is not sent).
   * Off for layers that change underneath the mount.
   */
  kernelCache: boolean;
  /** Most nodes the kernel may hold before the least recently looked up are dropped. */
  maxNodes?: number;
  /** Let the kernel enforce and cache POSIX ACLs (FUSE_POSIX_ACL). */
  posixAcl?: boolean;
  /** Microseconds to keep polling /dev/fuse after answering everything (0: sleep at once). */
  spinUsec?: number;
  /** Owners as shown to the kernel, and back (uidmapping= & co.); identity when absent. */
  ids?: IdMap;
  /** Offer FUSE passthrough for upper files (passthrough.ts); off with `nopassthrough`. */
  passthrough?: boolean;
  /** Where notes about the session go (passthrough refused, ...). */
  log?: (msg: string) => void;
  onUnexpected(op: string, path: string, err: unknown): void;
}

/** Largest write the kernel may send; with FUSE_MAX_PAGES, 256 pages. */
const MAX_WRITE = 1 << 20;
const READ_BUFFER = MAX_WRITE + 4096;
const UNKNOWN_INO = 0xffffffffn;
const { EAGAIN, ENOENT, EINTR, ENODEV } = constants.errno;

interface DirHandle {
  path: MergedPath;
  entries?: { name: Buffer; type: number }[];
}

/** A LOOKUP answered "absent, and cache that" (nodeid 0): a success on the wire. */
class NegativeEntry {
  constructor(readonly reply: Buffer) {}
}

/**
 * An error answer given without throwing (ENOENT of a lookup, ENODATA of a
 * getxattr): the usual answers of their requests, where an exception through
 * the handler's awaits cost more than the request's own work.
 */
class ErrnoReply {
  constructor(readonly errno: number) {}
}
const ENODATA_REPLY = new ErrnoReply(constants.errno.ENODATA);
const ENOENT_REPLY = new ErrnoReply(constants.errno.ENOENT);

/** A READ's data, in a buffer of the session's readBuffers pool: given back once written. */
class ReadReply {
  constructor(
    readonly buf: Buffer,
    readonly n: number,
  ) {}
}

/** Names answered "absent" with a positive negative timeout, so a full invalidation can reach them. */
const MAX_NEGATIVES = 65536;
/** Eviction notifications in flight at once (see evict). */
const EVICT_WRITERS = 4;
/** READ reply buffers kept for reuse (MAX_WRITE each, resident once used). */
const KEPT_READ_BUFFERS = 4;
/** Request buffers kept for large WRITEs (READ_BUFFER each, resident once used). */
const KEPT_WRITE_BUFFERS = 4;
/** WRITE requests larger than this keep the buffer they were read into instead of a copy. */
const WRITE_COPY_LIMIT = 16384;
/** Requests the kernel expects no reply to. */
const NO_REPLY: ReadonlySet<number> = new Set([P.Op.FORGET, P.Op.BATCH_FORGET, P.Op.INTERRUPT]);
/** Spins started at once, in a row, before one goes through setImmediate (spinAfterAnswers). */
const INLINE_SPINS = 32;

export class FuseSession {
  readonly nodes = new NodeTable();
  private readonly dirs = new Map<number, DirHandle>();
  /** Without opendir (kernel cache on), a listing pass is kept per node instead of per handle. */
  private readonly passes = new Map<number, DirHandle>();
  private readonly negatives = new Set<string>();
  /** The one negative-entry reply (it never changes). */
  private negativeEntry: NegativeEntry | undefined;
  private nextDir = 1;
  private closed = false;
  private poll: PollHandle | undefined;
  /** Requests read and not yet answered. */
  private inflight = 0;
  private spinning = false;
  /** Spins started from a promise job since the last one through setImmediate (spinAfterAnswers). */
  private inlineSpins = 0;
  /**
   * What the next request is read into: each request is copied out of it
   * before the next read, except a large WRITE, which keeps it (see take).
   */
  private buf: Buffer = Buffer.allocUnsafe(READ_BUFFER);
  /** What READ replies are read into (buffer-pool.ts). */
  private readonly readBuffers = new BufferPool(MAX_WRITE, KEPT_READ_BUFFERS);
  /** Read buffers handed to large WRITEs, and replacing them in buf. */
  private readonly writeBuffers = new BufferPool(READ_BUFFER, KEPT_WRITE_BUFFERS);
  /** Where READDIR replies are built; synchronous use only (copied out before any await). */
  private dirScratch = Buffer.allocUnsafe(0);
  private initDone!: () => void;
  /** Resolves once the kernel's INIT has been answered: the mount is live. */
  readonly initialized = new Promise<void>((r) => (this.initDone = r));
  private endDone!: (why: string) => void;
  /** Resolves when the connection ends (unmounted or aborted). */
  readonly ended = new Promise<string>((r) => (this.endDone = r));
  requests = 0;
  /** Nodes the kernel was asked to drop to keep the table under maxNodes. */
  evictions = 0;
  private evicting = false;
  private sinceEvict = Number.MAX_SAFE_INTEGER;
  /** Requests by operation name, for stats. */
  readonly byOp: Record<string, number> = {};
  /** Error replies by operation name and errno name. */
  readonly errors: Record<string, Record<string, number>> = {};
  /** Request latencies by operation name (`layerfs status`). */
  readonly latencies = new Latencies();
  /** Set while tracing (records and live tails); undefined costs one check per request. */
  tracer: Recorder | undefined;
  /** How open files are served: through the daemon, or passed through to their upper file. */
  readonly passthrough: Passthrough;

  constructor(
    private readonly fd: number,
    private readonly ov: Overlay,
    private readonly opts: SessionOptions,
  ) {
    this.maxNodes = opts.maxNodes ?? Number.MAX_SAFE_INTEGER;
    this.ids = opts.ids ?? new IdMap();
    this.passthrough = new Passthrough(fd, opts.log ?? (() => undefined));
    if (!opts.passthrough) this.passthrough.off = 'nopassthrough';
  }

  private readonly maxNodes: number;
  private readonly ids: IdMap;

  /** Starts serving; fd must be /dev/fuse opened O_NONBLOCK. */
  start(): void {
    this.ov.onInvalidate = (path, what) => this.invalidate(path, what);
    this.poll = native().pollReadable(this.fd, (status) => this.readable(status));
  }

  /**
   * Tells the kernel to forget what it caches for path. Name and data
   * invalidations are written from the threadpool, never synchronously: they
   * take locks the kernel may hold until it gets the reply to a request we
   * are still serving. Attributes alone are written at once (invalAttr).
   */
  private invalidate(path: MergedPath, what: 'attr' | 'entry'): void {
    if (this.closed) return;
    if (what === 'attr') {
      const node = this.nodes.idOf(path);
      if (node !== undefined) this.invalAttr(node);
      return;
    }
    if (path === '/') {
      // Everything: data and listings of every node, every name, every cached absence.
      for (const [id, p] of this.nodes.entries()) {
        this.notify(P.notifyInvalInode(id, 0, 0));
        if (p !== '/') this.invalEntry(p);
      }
      for (const k of this.negatives) {
        const i = k.indexOf('/');
        this.notify(P.notifyInvalEntry(Number(k.slice(0, i)), k.slice(i + 1)));
      }
      this.negatives.clear();
      return;
    }
    const node = this.nodes.idOf(path);
    if (node !== undefined) this.notify(P.notifyInvalInode(node, 0, 0));
    this.invalEntry(path);
    const parent = this.nodes.idOf(parentOf(path));
    if (parent !== undefined) this.notify(P.notifyInvalInode(parent, 0, 0));
  }

  private invalEntry(path: MergedPath): void {
    const parent = this.nodes.idOf(parentOf(path));
    if (parent !== undefined) this.notify(P.notifyInvalEntry(parent, baseName(path)));
  }

  /**
   * Drops the kernel's cached attributes of a node, synchronously. An
   * attributes-only FUSE_NOTIFY_INVAL_INODE (offset < 0) looks the inode up
   * and marks its attributes stale under spinlocks, touching no page and no
   * inode lock, so it cannot wait on a request we are serving. Written
   * through the threadpool it cost two thread wake-ups; a copy-up sends one
   * per directory it copies.
   */
  private invalAttr(node: number): void {
    try {
      writeSync(this.fd, P.notifyInvalInode(node, -1, 0));
    } catch {
      // ENOENT: the kernel no longer has the inode, nothing to drop. Any other
      // error (the connection going away) is the read loop's to report.
    }
  }

  private notify(buf: Buffer): void {
    // Errors are expected and harmless (ENOENT: the kernel no longer has it).
    write(this.fd, buf, () => undefined);
  }

  /**
   * Called on the main thread when /dev/fuse is readable: reads one request
   * and dispatches it. One read per callback, not a loop until EAGAIN: poll
   * is level-triggered, so a queued request brings the next callback at once
   * (one epoll_wait without sleeping). Answers that need no layer I/O (cache
   * hits) are written before the next loop turn, with no thread hop on
   * either side; requests that wait on layer I/O run concurrently.
   */
  private readable(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.end(`poll /dev/fuse: libuv error ${status}`);
      return;
    }
    this.inlineSpins = 0; // the event loop has turned
    this.take(native().readSpin(this.fd, this.buf, 0));
  }

  /**
   * After a turn in which every request was answered, polls /dev/fuse for up
   * to spinUsec before going back to sleep in epoll: a synchronous client
   * (find, ls -l, stat) sends its next request a few microseconds after our
   * reply, and catching it awake spares a sleep and a wake-up on both sides,
   * the largest cost of a round trip on virtual machines. Skipped while any
   * request waits on layer I/O (the loop must stay free to complete it).
   * Started by spinAfterAnswers, once the last reply has been written.
   */
  private spin = (): void => {
    this.spinning = false;
    if (this.closed || this.inflight > 0) return;
    this.take(native().readSpin(this.fd, this.buf, this.opts.spinUsec ?? 0));
  };

  /** Handles the result of one read of /dev/fuse: bytes, or -errno. */
  private take(n: number): void {
    if (n < 0) {
      const code = -n;
      // EAGAIN: nothing queued (a spurious wakeup, or the spin ran out).
      // ENOENT: the request was interrupted before we read it.
      if (code === EAGAIN || code === ENOENT || code === EINTR) return;
      this.end(code === ENODEV ? 'unmounted' : `read /dev/fuse: errno ${code}`);
      return;
    }
    if (n === 0) {
      this.end('connection closed');
      return;
    }
    // Copied out: the buffer is reused by the next read, and the request may
    // wait on I/O. A large WRITE instead keeps the buffer (its data is
    // written from it; a copy of 1 MiB into a new Buffer faulted its pages
    // in each time) and the next read gets another from the pool.
    let kept: Buffer | undefined;
    let bytes: Buffer;
    if (n > WRITE_COPY_LIMIT && P.opcodeOf(this.buf) === P.Op.WRITE) {
      kept = this.buf;
      this.buf = this.writeBuffers.take(READ_BUFFER);
      bytes = kept.subarray(0, n);
    } else {
      bytes = Buffer.from(this.buf.subarray(0, n));
    }
    const req = P.parseRequest(bytes);
    this.requests++;
    const name = P.OP_NAMES[req.opcode] ?? String(req.opcode);
    this.byOp[name] = (this.byOp[name] ?? 0) + 1;
    if (NO_REPLY.has(req.opcode) && this.tracer === undefined) {
      // Nothing to answer, time or trace: served here, without a promise.
      this.noReply(req);
      this.spinAfterAnswers();
      return;
    }
    this.inflight++;
    void this.serve(req, name, kept);
  }

  /**
   * Serves one request read by take, then does its bookkeeping: latency,
   * trace record, the kept WRITE buffer, and the spin once nothing is left
   * in flight. One async function per request around handle() (no
   * .catch/.then chain, no second async layer): each promise and its
   * reaction job cost measurably at tens of thousands of requests a second.
   */
  private async serve(req: P.Request, name: string, kept: Buffer | undefined): Promise<void> {
    const t0 = performance.now();
    const rec = this.tracer === undefined ? undefined : this.traceBegin(req, name, t0);
    let errno = 0;
    try {
      if (NO_REPLY.has(req.opcode)) this.noReply(req);
      else {
        let payload: Awaited<ReturnType<FuseSession['handle']>>;
        let failed = false;
        try {
          payload = await this.handle(req);
        } catch (err) {
          failed = true;
          errno = this.replyError(req, name, err);
        }
        if (!failed) errno = this.reply(req, name, payload);
      }
    } catch (err) {
      // A bug in the reply path itself: reported, never thrown out of the loop.
      this.opts.onUnexpected(name, `#${req.nodeid}`, err);
      errno = constants.errno.EIO;
    }
    const us = (performance.now() - t0) * 1000;
    this.latencies.add(name, us);
    if (rec !== undefined) this.tracer?.end(rec, errno, us);
    if (kept !== undefined) this.writeBuffers.give(kept);
    this.inflight--;
    this.spinAfterAnswers();
  }

  /**
   * Starts the spin if every request read has been answered (and spin= is
   * not 0), unless one is already started. Up to INLINE_SPINS times in a
   * row it runs at once, in the promise job that sent the last reply: going
   * through setImmediate cost a loop turn per request (processImmediate and
   * its checks were ~9% of the daemon's user time on a create workload).
   * Then once through setImmediate, so that the event loop's other work
   * (timers, threadpool completions, the control socket) is never held off
   * by a steady stream of requests answered from promise jobs. Never at once while the node table is being evicted: each
   * eviction notification is written from the threadpool and the next one
   * only once its completion has run in a loop turn, so with a turn only
   * every INLINE_SPINS requests a walk of the 1M-entry store outgrew the
   * eviction (RSS 411 MiB after the walk instead of 162).
   */
  private spinAfterAnswers(): void {
    if (this.inflight > 0 || this.spinning || (this.opts.spinUsec ?? 0) <= 0) return;
    this.spinning = true;
    if (!this.evicting && ++this.inlineSpins <= INLINE_SPINS) {
      this.spin();
      return;
    }
    this.inlineSpins = 0;
    setImmediate(this.spin);
  }

  private end(why: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.poll) native().pollStop(this.poll);
    this.poll = undefined;
    this.endDone(why);
  }

  private send(unique: bigint, error: number, payload?: Buffer | Buffer[]): void {
    const parts = payload === undefined ? [] : Array.isArray(payload) ? payload : [payload];
    const len = parts.reduce((a, b) => a + b.length, 0);
    try {
      // One write(2) per reply, as the kernel requires; writev avoids copying the payload.
      writevSync(this.fd, [P.outHeader(unique, error, len), ...parts]);
    } catch (err) {
      // ENOENT: the kernel gave up on the request (interrupted); nothing to do.
      if (!hasCode(err, 'ENOENT')) this.end(`write /dev/fuse: ${(err as Error).message}`);
    }
  }

  private traceBegin(req: P.Request, op: string, t0: number): TraceRecord {
    const d = describe(req, this.nodes);
    const start: RequestStart = { op, path: d.path, pid: req.pid, uid: req.uid, gid: req.gid };
    if (d.path2 !== undefined) start.path2 = d.path2;
    if (d.flags !== undefined) start.flags = d.flags;
    if (d.fh !== undefined) start.handleLayer = this.ov.handleLayer(d.fh);
    return this.tracer!.begin(start, performance.timeOrigin + t0);
  }

  private countError(op: string, errno: number): void {
    const byErrno = (this.errors[op] ??= {});
    const k = errnoName(errno);
    byErrno[k] = (byErrno[k] ?? 0) + 1;
  }

  /** Serves a request that gets no reply (NO_REPLY: FORGET, BATCH_FORGET, INTERRUPT). */
  private noReply(req: P.Request): void {
    if (req.opcode === P.Op.FORGET) {
      this.nodes.forget(req.nodeid, Number(req.arg.readBigUInt64LE(0)));
    } else if (req.opcode === P.Op.BATCH_FORGET) {
      const count = req.arg.readUInt32LE(0);
      for (let i = 0; i < count; i++) {
        const o = 8 + i * 16;
        this.nodes.forget(Number(req.arg.readBigUInt64LE(o)), Number(req.arg.readBigUInt64LE(o + 8)));
      }
    }
    // INTERRUPT: every request is short or unstoppable.
  }

  /** Writes the reply handle() produced; returns the errno answered (0: success). */
  private reply(req: P.Request, op: string, payload: Buffer | Buffer[] | NegativeEntry | ErrnoReply | ReadReply | undefined): number {
    if (payload instanceof ErrnoReply) {
      this.send(req.unique, -payload.errno);
      this.countError(op, payload.errno);
      return payload.errno;
    }
    if (payload instanceof ReadReply) {
      this.send(req.unique, 0, payload.buf.subarray(0, payload.n));
      this.readBuffers.give(payload.buf);
      return 0;
    }
    if (payload instanceof NegativeEntry) {
      // A success on the wire, ENOENT for the caller: counted and traced as such.
      this.send(req.unique, 0, payload.reply);
      this.countError(op, ENOENT);
      return ENOENT;
    }
    this.send(req.unique, 0, payload);
    if (req.opcode === P.Op.INIT) this.initDone();
    return 0;
  }

  /** Answers a request whose handling threw; returns the errno answered. */
  private replyError(req: P.Request, op: string, err: unknown): number {
    if (isUnexpected(err)) this.opts.onUnexpected(op, this.nodes.pathOf(req.nodeid) ?? `#${req.nodeid}`, err);
    const errno = toErrno(err);
    this.send(req.unique, errno);
    this.countError(op, -errno);
    return -errno;
  }

  private path(nodeid: number): MergedPath {
    const p = this.nodes.pathOf(nodeid);
    if (p === undefined) throw Object.assign(new Error('stale node'), { code: 'ENOENT' });
    return p;
  }

  private child(nodeid: number, name: string): MergedPath {
    if (name.length === 0 || name === '.' || name === '..' || name.includes('/')) {
      throw Object.assign(new Error('bad name'), { code: 'EINVAL' });
    }
    return childPath(this.path(nodeid), name);
  }

  /**
   * The entry for name in directory node parentId; the kernel will hold the
   * node. version: the overlay cache version read before st was, to keep a
   * directory's attributes on its node (see GETATTR).
   */
  private entry(parentId: number, name: string, st: Stat, version?: number): Buffer {
    const node = this.nodes.remember(parentId, name);
    if (node === undefined) throw Object.assign(new Error('stale node'), { code: 'ENOENT' });
    if (version !== undefined) this.keepDirAttr(node.id, st, version);
    // A round at most every twentieth of the bound in new lookups: nodes
    // being evicted stay until their FORGET, and a round that finds nothing
    // new to evict must not be repeated (it scans the table) on every lookup.
    this.sinceEvict++;
    if (this.nodes.size > this.maxNodes && !this.evicting && this.sinceEvict >= this.maxNodes / 20) {
      this.evicting = true;
      this.sinceEvict = 0;
      setImmediate(this.evict);
    }
    return P.entryOut(node.id, 0, this.opts.entryTimeout, this.attrTimeout(st), this.ids.shown(st));
  }

  /**
   * Brings the node table back under its bound: asks the kernel to drop the
   * dentries of the least recently looked-up leaf nodes (a tenth of the bound
   * at a time); their FORGETs then remove them. EVICT_WRITERS notifications
   * at a time, so an eviction never occupies more than that many of the
   * threadpool's threads (a notification can wait on a directory lock held
   * by a request in flight). One at a time was too slow for a walk of a 1M
   * store: each costs a thread hop there and back (~130 us here), a walk
   * looks up ~7 500 new names a second, and the table then grew to 220 000
   * nodes (RSS 250-310 MiB instead of ~190) in some runs.
   */
  private evict = (): void => {
    const victims = this.nodes.evictable(Math.max(1, this.nodes.size - Math.floor(this.maxNodes * 0.9)));
    this.evictions += victims.length;
    let i = 0;
    let writers = Math.min(EVICT_WRITERS, victims.length);
    if (writers === 0) this.evicting = false;
    const next = (): void => {
      if (this.closed || i >= victims.length) {
        if (--writers === 0) this.evicting = false;
        return;
      }
      const [parent, name] = victims[i++];
      write(this.fd, P.notifyInvalEntry(parent, name), next);
    };
    for (let w = writers; w > 0; w--) next();
  };

  /**
   * Keeps a directory's attributes on its node (see GETATTR), until the
   * node table first reaches maxNodes: from then on the kernel is being asked
   * to drop nodes, walks no longer repeat from its cache, and the kept
   * attributes (~250 bytes per directory node) were measured to push a
   * 1M-entry walk's peak RSS from 184 to 201 MiB.
   */
  private keepDirAttr(id: number, st: Stat, version: number): void {
    if (!this.opts.kernelCache || !this.ov.cache.enabled || !isDir(st)) return;
    if (this.evictions > 0) return;
    this.nodes.keepAttr(id, st, version);
  }

  private attr(st: Stat): Buffer {
    return P.attrOut(this.attrTimeout(st), this.ids.shown(st));
  }

  /**
   * The kernel caches attributes per node, and each name is its own node
   * here; so a change through one name of a hard-linked file (nlink, times,
   * size) would leave the others' cached attributes stale, and no
   * notification can be ordered safely against a getattr already in flight
   * for another name. Such files' attributes are not cached by the kernel
   * (the daemon's cache still answers them).
   */
  private attrTimeout(st: Stat): number {
    return st.nlink > 1 && (st.mode & 0o170000) !== 0o040000 ? 0 : this.opts.attrTimeout;
  }

  /**
   * FUSE's auto_cache: the kernel keeps a file's cached pages across opens
   * while its mtime and size are what they were at its last open (a write
   * through another name of a hard link changes them).
   */
  private async keepCache(nodeid: number, fh: number): Promise<boolean> {
    return this.nodes.stamp(nodeid, await this.ov.openedStat(fh));
  }

  /**
   * FUSE_HANDLE_KILLPRIV_V2: the kernel no longer asks for security.capability
   * before every write (one GETXATTR per write saved) nor clears set-id bits
   * itself; the upper layer's own kernel drops security.capability on our
   * write/truncate/chown, and set-id bits are cleared here when the kernel
   * flags the caller as lacking CAP_FSETID (the daemon, as root, keeps them).
   * A file whose name is gone keeps its bits (as with an fd-only chmod failing).
   */
  private async killSuidgid(req: P.Request): Promise<void> {
    const p = this.nodes.pathOf(req.nodeid);
    if (p === undefined) return;
    const before = await this.ov.getattr(p);
    const after = await this.ov.setattr(p, { killSuidgid: { gid: this.ids.diskGid(req.gid) } });
    // The WRITE and OPEN replies carry no attributes: the kernel's cached mode
    // must go before the caller can stat, so it is dropped before the reply.
    if (after.mode !== before.mode) this.invalAttr(req.nodeid);
  }

  /**
   * How the file handle fh, just opened on node by the caller uid, is
   * served: a backing id (FOPEN_PASSTHROUGH), or 0 (through the daemon). See
   * passthrough.ts. An open the kernel could not accept in either mode is
   * released and fails with EIO.
   */
  private async passThrough(node: number, uid: number, fh: number): Promise<number> {
    const file = this.ov.backingFile(fh);
    const id = this.passthrough.open(node, fh, file, uid === 0);
    if (id < 0) {
      this.opts.onUnexpected('open', this.nodes.pathOf(node) ?? `#${node}`, new Error('its node is passed through to another upper file (replaced behind the mount?)'));
      await this.ov.release(fh);
      this.passthrough.release(fh);
      throw Object.assign(new Error('passthrough conflict'), { code: 'EIO' });
    }
    // Writes through it bypass the daemon: the overlay must re-read the
    // file's attributes until it is closed.
    if (id > 0) this.ov.bypassed(fh);
    return id;
  }

  private caller(req: P.Request): Caller {
    return { uid: this.ids.diskUid(req.uid), gid: this.ids.diskGid(req.gid), pid: req.pid };
  }

  private async handle(req: P.Request): Promise<Buffer | Buffer[] | NegativeEntry | ErrnoReply | ReadReply | undefined> {
    const { ov } = this;
    const a = req.arg;
    switch (req.opcode) {
      case P.Op.INIT:
        return this.init(a);
      case P.Op.DESTROY:
        return undefined;
      case P.Op.LOOKUP: {
        const name = P.cstrings(a, 1)[0];
        const p = this.child(req.nodeid, name);
        const version = ov.cache.version;
        const st = await ov.lookup(p);
        if (st !== undefined) return this.entry(req.nodeid, name, st, version);
        if (this.opts.negativeTimeout <= 0) return ENOENT_REPLY;
        if (this.negatives.size >= MAX_NEGATIVES) this.negatives.delete(this.negatives.values().next().value!);
        this.negatives.add(`${req.nodeid}/${name}`);
        return (this.negativeEntry ??= new NegativeEntry(P.negativeEntryOut(this.opts.negativeTimeout)));
      }
      case P.Op.GETATTR: {
        const flags = a.readUInt32LE(0);
        const fh = Number(a.readBigUInt64LE(8));
        // A directory's attributes are kept on its node while nothing has
        // changed anywhere (the cache version, bumped by every mutation and
        // invalidation): the kernel asks again for every directory it has
        // read (fuse_invalidate_atime), and its node outlives the daemon
        // cache's entry for it. Looked at first: no path is built for them
        // (an unlinked node's attributes are never current, unlink bumps the
        // version).
        const version = ov.cache.version;
        const kept = this.nodes.attrOf(req.nodeid, version);
        if (kept !== undefined) return this.attr(kept);
        const p = this.nodes.pathOf(req.nodeid);
        if (p === undefined && flags & P.FUSE_GETATTR_FH) return this.attr(await ov.fgetattr(fh));
        const st = await ov.getattr(p ?? this.path(req.nodeid)); // path() throws the ENOENT
        this.keepDirAttr(req.nodeid, st, version);
        return this.attr(st);
      }
      case P.Op.SETATTR: {
        const valid = a.readUInt32LE(0);
        const set: SetAttr = {};
        if (valid & P.FATTR_MODE) set.mode = a.readUInt32LE(68);
        if (valid & P.FATTR_UID) set.uid = this.ids.diskUid(a.readUInt32LE(76));
        if (valid & P.FATTR_GID) set.gid = this.ids.diskGid(a.readUInt32LE(80));
        if (valid & P.FATTR_SIZE) set.size = Number(a.readBigUInt64LE(16));
        const time = (now: number, t: number, secOff: number, nsecOff: number): TimeSpec | undefined => {
          if (valid & now) return 'now';
          if (valid & t) return a.readBigInt64LE(secOff) * 1000000000n + BigInt(a.readUInt32LE(nsecOff));
          return undefined;
        };
        if (valid & P.FATTR_KILL_SUIDGID) set.killSuidgid = { gid: this.ids.diskGid(req.gid) };
        set.atime = time(P.FATTR_ATIME_NOW, P.FATTR_ATIME, 32, 56);
        set.mtime = time(P.FATTR_MTIME_NOW, P.FATTR_MTIME, 40, 60);
        if (set.atime === undefined) delete set.atime;
        if (set.mtime === undefined) delete set.mtime;
        const fh = valid & P.FATTR_FH ? Number(a.readBigUInt64LE(8)) : undefined;
        const p = this.nodes.pathOf(req.nodeid);
        const st = p === undefined && fh !== undefined ? await ov.fsetattr(fh, set) : await ov.setattr(this.path(req.nodeid), set, fh);
        return this.attr(st);
      }
      case P.Op.READLINK:
        return Buffer.from(await ov.readlink(this.path(req.nodeid)));
      case P.Op.SYMLINK: {
        const [name, target] = P.cstrings(a, 2);
        const p = this.child(req.nodeid, name);
        return this.entry(req.nodeid, name, await ov.symlink(target, p, this.caller(req)));
      }
      case P.Op.MKNOD: {
        const name = P.cstrings(a, 1, 16)[0];
        const p = this.child(req.nodeid, name);
        return this.entry(req.nodeid, name, await ov.mknod(p, a.readUInt32LE(0), a.readUInt32LE(4), this.caller(req)));
      }
      case P.Op.MKDIR: {
        const name = P.cstrings(a, 1, 8)[0];
        const p = this.child(req.nodeid, name);
        return this.entry(req.nodeid, name, await ov.mkdir(p, a.readUInt32LE(0), this.caller(req)));
      }
      case P.Op.UNLINK:
      case P.Op.RMDIR: {
        const name = P.cstrings(a, 1)[0];
        const p = this.child(req.nodeid, name);
        if (req.opcode === P.Op.UNLINK) await ov.unlink(p);
        else await ov.rmdir(p);
        this.nodes.detach(req.nodeid, name);
        return undefined;
      }
      case P.Op.RENAME:
      case P.Op.RENAME2: {
        const two = req.opcode === P.Op.RENAME2;
        const newdir = Number(a.readBigUInt64LE(0));
        const flags = two ? a.readUInt32LE(8) : 0;
        const [from, to] = P.cstrings(a, 2, two ? 16 : 8);
        const src = this.child(req.nodeid, from);
        const dst = this.child(newdir, to);
        await ov.rename(src, dst, flags);
        if (flags & 2 /* RENAME_EXCHANGE */) this.nodes.exchange(req.nodeid, from, newdir, to);
        else this.nodes.move(req.nodeid, from, newdir, to);
        return undefined;
      }
      case P.Op.LINK: {
        const fromId = Number(a.readBigUInt64LE(0));
        const from = this.path(fromId);
        const name = P.cstrings(a, 1, 8)[0];
        const p = this.child(req.nodeid, name);
        const out = this.entry(req.nodeid, name, await ov.link(from, p));
        // The source's nlink changed; the kernel holds it under another node.
        this.invalAttr(fromId);
        return out;
      }
      case P.Op.OPEN: {
        const p = this.path(req.nodeid);
        const flags = a.readUInt32LE(0);
        const fh = await ov.open(p, flags);
        if (a.readUInt32LE(4) & P.FUSE_OPEN_KILL_SUIDGID && flags & fsc.O_TRUNC) await this.killSuidgid(req);
        const backing = await this.passThrough(req.nodeid, req.uid, fh);
        if (backing > 0) return P.openOut(fh, P.FOPEN_PASSTHROUGH, backing);
        return P.openOut(fh, this.opts.kernelCache && (await this.keepCache(req.nodeid, fh)) ? P.FOPEN_KEEP_CACHE : 0);
      }
      case P.Op.CREATE: {
        const flags = a.readUInt32LE(0);
        const mode = a.readUInt32LE(4);
        const name = P.cstrings(a, 1, 16)[0];
        const p = this.child(req.nodeid, name);
        const { fh, stat } = await ov.create(p, flags, mode, this.caller(req));
        const e = this.entry(req.nodeid, name, stat);
        const node = this.nodes.idIn(req.nodeid, name)!;
        if (this.opts.kernelCache) this.nodes.stamp(node, stat);
        const backing = await this.passThrough(node, req.uid, fh);
        return [e, backing > 0 ? P.openOut(fh, P.FOPEN_PASSTHROUGH, backing) : P.openOut(fh, 0)];
      }
      case P.Op.READ: {
        const fh = Number(a.readBigUInt64LE(0));
        const offset = Number(a.readBigUInt64LE(8));
        const size = a.readUInt32LE(16);
        const buf = this.readBuffers.take(size);
        try {
          return new ReadReply(buf, await ov.read(fh, buf, size, offset));
        } catch (err) {
          this.readBuffers.give(buf);
          throw err;
        }
      }
      case P.Op.WRITE: {
        const fh = Number(a.readBigUInt64LE(0));
        const offset = Number(a.readBigUInt64LE(8));
        const size = a.readUInt32LE(16);
        const data = a.subarray(40, 40 + size);
        const n = await ov.write(fh, data, size, offset);
        if (a.readUInt32LE(20) & P.FUSE_WRITE_KILL_SUIDGID) await this.killSuidgid(req);
        const out = P.zeroed(8);
        out.writeUInt32LE(n, 0);
        return out;
      }
      case P.Op.STATFS: {
        const s = await ov.statfs(this.nodes.pathOf(req.nodeid) ?? '/');
        return P.statfsOut({ ...s, namelen: s.namemax });
      }
      case P.Op.RELEASE: {
        const fh = Number(a.readBigUInt64LE(0));
        try {
          await ov.release(fh);
        } finally {
          this.passthrough.release(fh);
        }
        return undefined;
      }
      case P.Op.FLUSH:
        // Nothing to do at close(2): ENOSYS makes the kernel stop sending it.
        throw Object.assign(new Error('no flush'), { code: 'ENOSYS' });
      case P.Op.FSYNC:
        await ov.fsync(Number(a.readBigUInt64LE(0)), (a.readUInt32LE(8) & P.FUSE_FSYNC_FDATASYNC) !== 0);
        return undefined;
      case P.Op.FSYNCDIR:
        return undefined;
      case P.Op.SETXATTR: {
        const size = a.readUInt32LE(0);
        const flags = a.readUInt32LE(4);
        const nameEnd = a.indexOf(0, 8);
        const name = a.toString('utf8', 8, nameEnd);
        await ov.setxattr(this.path(req.nodeid), name, Buffer.from(a.subarray(nameEnd + 1, nameEnd + 1 + size)), flags);
        return undefined;
      }
      case P.Op.GETXATTR: {
        const size = a.readUInt32LE(0);
        const value = await ov.getxattrMaybe(this.path(req.nodeid), P.cstrings(a, 1, 8)[0]);
        return value === undefined ? ENODATA_REPLY : sized(value, size);
      }
      case P.Op.LISTXATTR: {
        const size = a.readUInt32LE(0);
        const names = await ov.listxattr(this.path(req.nodeid));
        return sized(Buffer.from(names.map((n) => n + '\0').join('')), size);
      }
      case P.Op.REMOVEXATTR:
        await ov.removexattr(this.path(req.nodeid), P.cstrings(a, 1)[0]);
        return undefined;
      case P.Op.ACCESS:
        await ov.access(this.path(req.nodeid), a.readUInt32LE(0));
        return undefined;
      case P.Op.OPENDIR: {
        const p = this.path(req.nodeid);
        await ov.opendir(p);
        // ENOSYS: the kernel stops sending opendir/releasedir for good and
        // caches listings (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR) until the
        // directory changes through it or we invalidate it.
        if (this.opts.kernelCache) throw Object.assign(new Error('no opendir'), { code: 'ENOSYS' });
        const fh = this.nextDir++;
        this.dirs.set(fh, { path: p });
        return P.openOut(fh, 0);
      }
      case P.Op.READDIR:
        return this.readdir(req, a, false);
      case P.Op.READDIRPLUS:
        return this.readdir(req, a, true);
      case P.Op.RELEASEDIR:
        this.dirs.delete(Number(a.readBigUInt64LE(0)));
        return undefined;
      case P.Op.FALLOCATE: {
        const fh = Number(a.readBigUInt64LE(0));
        await ov.fallocate(fh, a.readUInt32LE(24), Number(a.readBigUInt64LE(8)), Number(a.readBigUInt64LE(16)));
        return undefined;
      }
      default:
        throw Object.assign(new Error('not implemented'), { code: 'ENOSYS' });
    }
  }

  private init(a: Buffer): Buffer {
    const major = a.readUInt32LE(0);
    const maxReadahead = a.readUInt32LE(8);
    const kflags = a.readUInt32LE(12);
    const kflags2 = kflags & P.FUSE_INIT_EXT && a.length >= 20 ? a.readUInt32LE(16) : 0;
    if (major !== P.FUSE_KERNEL_VERSION) throw Object.assign(new Error(`FUSE protocol ${major}`), { code: 'EPROTO' });
    // FUSE_POSIX_ACL: the kernel reads the layers' POSIX ACLs through
    // GETXATTR, honours them in its permission checks (as kernel overlayfs
    // does; without it an ACL granting access is ignored), and caches them
    // per inode, so ls -l asks once per file instead of on every call.
    // READDIRPLUS (auto): the first chunk of a listing, and every chunk once
    // the kernel has seen the directory's entries being stat()ed, carries
    // each entry's attributes and node, so ls -l and stat walks need no
    // LOOKUP per entry. Only with kernel caching: the entries are cached then.
    // CACHE_SYMLINKS: a target is read once per node (tar of the bench store
    // sent 4 000 READLINKs on every pass). A node's target cannot change
    // through the mount (a new symlink at a name is a new node), and
    // invalidation of a node (INVAL_INODE, offset 0) drops it.
    const want =
      P.FUSE_ASYNC_READ |
      P.FUSE_ATOMIC_O_TRUNC |
      P.FUSE_BIG_WRITES |
      P.FUSE_PARALLEL_DIROPS |
      P.FUSE_MAX_PAGES |
      P.FUSE_HANDLE_KILLPRIV_V2 |
      (this.opts.posixAcl ? P.FUSE_POSIX_ACL : 0) |
      (this.opts.kernelCache ? P.FUSE_DO_READDIRPLUS | P.FUSE_READDIRPLUS_AUTO | P.FUSE_CACHE_SYMLINKS : 0);
    const out = Buffer.alloc(P.INIT_OUT_SIZE);
    out.writeUInt32LE(P.FUSE_KERNEL_VERSION, 0);
    out.writeUInt32LE(P.FUSE_KERNEL_MINOR_VERSION, 4);
    out.writeUInt32LE(maxReadahead, 8);
    out.writeUInt32LE(want & kflags, 12);
    out.writeUInt16LE(64, 16); // max_background
    out.writeUInt16LE(48, 18); // congestion_threshold
    out.writeUInt32LE(MAX_WRITE, 20);
    out.writeUInt32LE(1, 24); // time_gran: nanoseconds
    out.writeUInt16LE(MAX_WRITE / 4096, 28); // max_pages
    // Passthrough (passthrough.ts): flags2, and the stacking depth of this
    // filesystem, 1: its backing files are on an ordinary filesystem, and it
    // can itself still be a lower layer of kernel overlayfs.
    if (this.passthrough.off === undefined) {
      if (kflags2 & P.FUSE_PASSTHROUGH_FLAGS2) {
        out.writeUInt32LE((want & kflags) | P.FUSE_INIT_EXT, 12);
        out.writeUInt32LE(P.FUSE_PASSTHROUGH_FLAGS2, 32); // flags2
        out.writeUInt32LE(1, 36); // max_stack_depth
      } else {
        this.passthrough.off = 'the kernel does not offer it (Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH)';
        this.opts.log?.(`passthrough off: ${this.passthrough.off}`);
      }
    }
    return out;
  }

  /**
   * READDIR, and READDIRPLUS (plus): each entry then also carries its node
   * and attributes, as a LOOKUP reply would. The kernel links every entry of
   * a plus reply and counts it as a lookup, so each one sent with a node id
   * is remembered here; "." and "..", and entries that vanished since the
   * listing was read, go with node id 0 (the kernel links nothing for them).
   */
  private async readdir(req: P.Request, a: Buffer, plus: boolean): Promise<Buffer> {
    const fh = Number(a.readBigUInt64LE(0));
    const offset = Number(a.readBigUInt64LE(8));
    const size = a.readUInt32LE(16);
    let d = this.dirs.get(fh);
    if (fh === 0 && this.opts.kernelCache) {
      // No opendir: one pass per node, started at offset 0, dropped at its end.
      d = this.passes.get(req.nodeid);
      if (d === undefined || offset === 0) {
        d = { path: this.path(req.nodeid) };
        this.passes.set(req.nodeid, d);
      }
    }
    if (d === undefined) throw Object.assign(new Error('bad dir handle'), { code: 'EBADF' });
    if (d.entries === undefined || offset === 0) {
      // Read once per pass (offset 0 starts one: opendir or rewinddir).
      const list = await this.ov.readdir(d.path);
      d.entries = [
        { name: Buffer.from('.'), type: 0o040000 },
        { name: Buffer.from('..'), type: 0o040000 },
        ...list.map((e) => ({ name: Buffer.from(e.name), type: e.type })),
      ];
    }
    // Which entries fit is decided first; for plus, their attributes are
    // then read (all before anything is written: the scratch buffer must
    // not be shared across an await).
    const entrySize = plus ? P.ENTRY_OUT_SIZE : 0;
    let end = offset;
    for (let used = 0; end < d.entries.length; end++) {
      const need = entrySize + P.direntSize(d.entries[end].name.length);
      if (used + need > size) break;
      used += need;
    }
    // For plus: each entry's path and attributes, undefined for "." and ".."
    // and for entries gone since the listing was read.
    const plusOf: Array<{ name: string; st: Stat } | undefined> = [];
    const version = this.ov.cache.version;
    if (plus) {
      for (let i = offset; i < end; i++) {
        if (i < 2 || this.closed) {
          plusOf.push(undefined);
          continue;
        }
        const name = d.entries[i].name.toString();
        try {
          plusOf.push({ name, st: await this.ov.getattr(childPath(d.path, name)) });
        } catch (err) {
          if (!hasCode(err, 'ENOENT', 'ENOTDIR')) throw err;
          plusOf.push(undefined);
        }
      }
    }
    // Built in a scratch buffer and copied out at its used length: kernel
    // readdir sizes are 4 KiB or more, too big for Node's buffer pool.
    const out = this.dirScratch.length >= size ? this.dirScratch : (this.dirScratch = Buffer.allocUnsafe(size));
    let used = 0;
    for (let i = offset; i < end; i++) {
      const e = d.entries[i];
      if (plus) {
        const x = plusOf[i - offset];
        // Node id 0 (all zeros): the kernel links nothing for this entry.
        if (x === undefined) out.fill(0, used, used + P.ENTRY_OUT_SIZE);
        else this.entry(req.nodeid, x.name, x.st, version).copy(out, used);
        used += P.ENTRY_OUT_SIZE;
      }
      used += P.writeDirent(out, used, UNKNOWN_INO, i + 1, e.type >> 12, e.name);
    }
    if (used === 0 && fh === 0) this.passes.delete(req.nodeid);
    return Buffer.from(out.subarray(0, used));
  }
}

/** getxattr/listxattr answers: the size when asked for it, ERANGE when it does not fit. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) {
    const out = P.zeroed(8);
    out.writeUInt32LE(value.length, 0);
    return out;
  }
  if (value.length > size) throw Object.assign(new Error('value too large'), { code: 'ERANGE' });
  return value;
}
