// The tracer: turns FUSE requests (begin/end, from the session) and the
// overlay's decisions (core/trace.ts hooks) into TraceRecords, and hands
// finished records to the sinks: the SQLite ring (store.ts) and live
// subscribers (`layerfs trace tail`).
//
// Attribution: a decision event names a merged path; it belongs to the
// request in flight on that path, or, for a parent directory's copy-up or
// resolution, to a request on a path below it. Requests are mostly served
// synchronously, so there is nearly always one request in flight.
import * as fs from 'fs';
import type { Resolution, StopReason } from '../core/lookup';
import type { MergedPath } from '../core/paths';
import type { TraceHook } from '../core/trace';
import type { TraceRecord } from './record';

/** What the session knows of a request before it is served. */
export interface RequestStart {
  op: string;
  path: string;
  path2?: string;
  flags?: number;
  pid: number;
  uid: number;
  gid: number;
  /** For requests on an open file: the layer the handle reads (0: upper). */
  handleLayer?: number;
}

export interface Subscriber {
  accept(r: TraceRecord): boolean;
  send(batch: TraceRecord[]): void;
}

const COMM_TTL_MS = 2000;

export class Recorder implements TraceHook {
  private readonly inflight = new Map<string, TraceRecord>();
  private readonly comms = new Map<number, { comm: string; at: number }>();
  private pending: TraceRecord[] = [];
  private fanout: NodeJS.Timeout | undefined;
  readonly subscribers = new Set<Subscriber>();
  sink: ((r: TraceRecord) => void) | undefined;
  records = 0;

  constructor(private readonly layerNames: readonly string[]) {}

  get active(): boolean {
    return this.sink !== undefined || this.subscribers.size > 0;
  }

  begin(s: RequestStart, startMs: number): TraceRecord {
    // Every field present from the start (one object shape for all records;
    // undefined ones are left out of JSON and stored as NULL).
    const layer = s.handleLayer !== undefined ? this.layerNames[s.handleLayer] : undefined;
    const r: TraceRecord = {
      ts: startMs,
      op: s.op,
      path: s.path,
      path2: s.path2,
      flags: s.flags,
      errno: 0,
      durUs: 0,
      pid: s.pid,
      uid: s.uid,
      gid: s.gid,
      comm: this.comm(s.pid),
      layer,
      decision: layer !== undefined ? `open file in ${layer}` : undefined,
      cache: undefined,
      copyupBytes: undefined,
      copyupUs: undefined,
      marker: undefined,
    };
    if (s.path !== '') this.inflight.set(s.path, r);
    return r;
  }

  end(r: TraceRecord, errno: number, durUs: number): void {
    r.errno = errno;
    r.durUs = durUs;
    if (this.inflight.get(r.path) === r) this.inflight.delete(r.path);
    this.records++;
    this.sink?.(r);
    if (this.subscribers.size > 0) {
      this.pending.push(r);
      if (this.fanout === undefined) {
        // Batched: one write per subscriber per 100 ms.
        this.fanout = setTimeout(() => this.flushSubscribers(), 100);
        this.fanout.unref();
      }
    }
  }

  private flushSubscribers(): void {
    this.fanout = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const s of this.subscribers) {
      const mine = batch.filter((r) => s.accept(r));
      if (mine.length > 0) s.send(mine);
    }
  }

  /** The caller's command name; re-read after a while, as pids are reused. */
  private comm(pid: number): string {
    if (pid === 0) return 'kernel';
    const now = Date.now();
    const c = this.comms.get(pid);
    if (c !== undefined && now - c.at < COMM_TTL_MS) return c.comm;
    let comm = '?';
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd();
    } catch {
      // gone already
    }
    if (this.comms.size > 4096) this.comms.clear();
    this.comms.set(pid, { comm, at: now });
    return comm;
  }

  /** The record in flight on path, or on a path below it. */
  private recordFor(path: MergedPath): TraceRecord | undefined {
    const exact = this.inflight.get(path);
    if (exact !== undefined) return exact;
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const [p, r] of this.inflight) if (p.startsWith(prefix)) return r;
    return undefined;
  }

  // ---- TraceHook ----------------------------------------------------------------

  resolved(path: MergedPath, r: Resolution, parent: Resolution | undefined, cacheHit: boolean): void {
    const rec = this.inflight.get(path);
    // The first resolution of the request's own path decides; later ones
    // (after a copy-up or a create) describe the result, not the lookup.
    if (rec === undefined || rec.cache !== undefined) return;
    rec.cache = cacheHit ? 'hit' : 'miss';
    if (rec.layer === undefined && r.entries.length > 0) rec.layer = this.layerNames[r.entries[0].layer];
    if (rec.decision === undefined) rec.decision = this.decide(r, parent);
  }

  copiedUp(path: MergedPath, from: number, bytes: number, ns: number): void {
    const rec = this.recordFor(path);
    if (rec === undefined) return;
    rec.copyupBytes = (rec.copyupBytes ?? 0) + bytes;
    rec.copyupUs = (rec.copyupUs ?? 0) + Math.round(ns / 1000);
    const what = `copy-up of ${path} from ${this.layerNames[from]}`;
    rec.decision = rec.decision === undefined ? what : `${rec.decision}; ${what}`;
  }

  marker(path: MergedPath, kind: 'whiteout' | 'opaque', form: string): void {
    const rec = this.recordFor(path);
    if (rec === undefined) return;
    const m = `${kind} (${form}) at ${path}`;
    rec.marker = rec.marker === undefined ? m : `${rec.marker}; ${m}`;
  }

  private decide(r: Resolution, parent: Resolution | undefined): string {
    const n = this.layerNames;
    const stop = (s: StopReason): string => {
      switch (s.kind) {
        case 'whiteout':
          return `whiteout (${s.form}) in ${n[s.layer]}`;
        case 'opaque':
          return `opaque directory (${s.form}) in ${n[s.layer]}`;
        case 'non-directory':
          return `non-directory in ${n[s.layer]} hides the layers below`;
        case 'non-directory-below':
          return `non-directory in ${n[s.layer]} below a directory`;
        case 'reserved-name':
          return 'reserved .wh. name';
      }
    };
    if (r.entries.length > 0) {
      let d = `served by ${n[r.entries[0].layer]}`;
      if (r.entries.length > 1) d += `, merged with ${r.entries.slice(1).map((e) => n[e.layer]).join(', ')}`;
      // A non-directory always ends the walk: only other stops are news.
      if (r.stop !== undefined && r.stop.kind !== 'non-directory') d += `; merge stopped by ${stop(r.stop)}`;
      return d;
    }
    if (r.stop !== undefined) return `hidden by ${stop(r.stop)}`;
    if (parent?.stop?.kind === 'opaque') return `absent below opaque directory ${parent.path} (${parent.stop.form}) in ${n[parent.stop.layer]}`;
    return 'absent in every layer';
  }
}
