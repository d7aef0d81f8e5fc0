// The daemon's control commands (served on the socket of control/server.ts):
// status, invalidate, trace on/off, live tail, explain. Glue between the
// socket and the overlay, the session and the tracer; each handler answers
// from counters and tables in memory, except explain, which reads the layers.
import { explain } from '../core/explain';
import { mergedPath } from '../core/paths';
import type { Overlay } from '../core/overlay';
import type { Layer } from '../core/layer';
import type { FuseSession } from '../fuse/session';
import { ControlServer, type ControlRequest, type Reply } from '../control/server';
import { defaultTraceFile, ensureRuntimeDir, socketPath } from '../control/runtime';
import { matcher, type TraceFilter } from '../trace/filter';
import { Recorder } from '../trace/recorder';
import { TraceStore } from '../trace/store';
import type { Logger } from './daemon';

export interface ControlContext {
  mountpoint: string;
  ov: Overlay;
  session: FuseSession;
  layers: readonly Layer[];
  names: readonly string[];
  /** What the layers are: name, root, how they are served. */
  layerInfo: Array<{ name: string; root: string; served: string; override?: string }>;
  /** How owners are shown (IdMap.describe). */
  owners: string;
  options: string;
  log: Logger;
  startedAt: number;
  traceMaxBytes: number;
}

export class Control {
  readonly recorder: Recorder;
  private store: TraceStore | undefined;
  private server: ControlServer | undefined;

  constructor(private readonly c: ControlContext) {
    this.recorder = new Recorder(c.names);
  }

  /** Starts listening; failures to do so are reported, and the mount goes on without. */
  async start(): Promise<void> {
    try {
      ensureRuntimeDir();
      this.server = await ControlServer.listen(socketPath(this.c.mountpoint), this.handlers(), (m) => this.c.log.error(m));
      this.c.log.info(`control socket: ${this.server.path}`);
    } catch (err) {
      this.c.log.error(`no control socket (status, trace, invalidate unavailable): ${(err as Error).message}`);
    }
  }

  /** Turns file tracing on (into file, default in the runtime directory). Throws with a one-line reason. */
  traceOn(file?: string): string {
    const target = file === undefined || file === '' ? defaultTraceFile(this.c.mountpoint) : file;
    if (this.store !== undefined) {
      if (this.store.file === target) return target;
      this.traceOff();
    }
    if (file === undefined || file === '') ensureRuntimeDir();
    let store: TraceStore;
    try {
      store = new TraceStore(
        target,
        this.c.traceMaxBytes,
        { mountpoint: this.c.mountpoint, layers: JSON.stringify(this.c.layerInfo), options: this.c.options, started: new Date().toISOString() },
        (m) => this.c.log.error(m),
      );
    } catch (err) {
      throw new Error(`cannot trace to ${target}: ${(err as Error).message}`);
    }
    this.store = store;
    this.recorder.sink = (r) => store.add(r);
    this.activate();
    this.c.log.info(`tracing to ${target}`);
    return target;
  }

  traceOff(): void {
    this.recorder.sink = undefined;
    this.store?.close();
    this.store = undefined;
    this.activate();
  }

  /** Hooks the recorder in while anyone listens; unhooked, tracing costs one check per request. */
  private activate(): void {
    const on = this.recorder.active;
    this.c.session.tracer = on ? this.recorder : undefined;
    this.c.ov.trace = on ? this.recorder : undefined;
  }

  close(): void {
    this.traceOff();
    this.server?.close();
  }

  private status(): object {
    const { session, ov } = this.c;
    const cache = ov.cache.stats();
    const lookups = cache.hits + cache.misses;
    const mc = ov.markerConfig;
    return {
      mountpoint: this.c.mountpoint,
      pid: process.pid,
      uptimeSec: Math.round((Date.now() - this.c.startedAt) / 1000),
      layers: this.c.layerInfo,
      options: this.c.options,
      whiteouts: mc === undefined ? 'read-only mount' : mc.whiteout === 'chardev' ? 'character devices 0/0' : `zero-size files with ${mc.xattrNs}.overlay.whiteout`,
      opaque: mc === undefined ? undefined : `${mc.xattrNs}.overlay.opaque=y`,
      owners: this.c.owners,
      markerProbe: mc?.why,
      requests: session.requests,
      ops: session.byOp,
      errors: session.errors,
      latencyUs: session.latencies.summary(),
      cache: { ...cache, hitRatio: lookups === 0 ? null : cache.hits / lookups, enabled: ov.cache.enabled },
      copyUps: ov.copyUps,
      passthrough: { off: session.passthrough.off ?? null, files: session.passthrough.opened },
      nodes: session.nodes.size,
      evictions: session.evictions,
      rssBytes: process.memoryUsage().rss,
      trace: {
        file: this.store?.file ?? null,
        records: this.recorder.records,
        written: this.store?.written ?? 0,
        dropped: this.store?.dropped ?? 0,
        tails: this.recorder.subscribers.size,
      },
    };
  }

  private handlers(): Record<string, (req: ControlRequest, reply: Reply) => void | Promise<void>> {
    return {
      status: (_req, reply) => reply.end({ ok: true, status: this.status() }),
      invalidate: (req, reply) => {
        const p = typeof req.path === 'string' ? mergedPath(req.path) : undefined;
        this.c.ov.invalidate(p);
        this.c.log.info(`cached state invalidated: ${p ?? 'everything'} (layerfs invalidate)`);
        reply.end({ ok: true, invalidated: p ?? '/' });
      },
      trace: (req, reply) => {
        if (req.on === true) {
          let file: string;
          try {
            file = this.traceOn(typeof req.file === 'string' ? req.file : undefined);
          } catch (err) {
            reply.end({ ok: false, error: (err as Error).message }); // the user's mistake: no stack in the log
            return;
          }
          reply.end({ ok: true, tracing: true, file });
        } else {
          const file = this.store?.file ?? null;
          this.traceOff();
          reply.end({ ok: true, tracing: false, file });
        }
      },
      tail: (req, reply) => {
        const f = (req.filter ?? {}) as TraceFilter;
        const accept = matcher(f);
        const sub = {
          accept,
          send: (batch: object[]) => {
            for (const r of batch) reply.send(r);
          },
        };
        this.recorder.subscribers.add(sub);
        this.activate();
        reply.send({ ok: true, tailing: true });
        reply.onClose(() => {
          this.recorder.subscribers.delete(sub);
          this.activate();
        });
      },
      explain: async (req, reply) => {
        if (typeof req.path !== 'string') {
          reply.end({ ok: false, error: 'explain: no path' });
          return;
        }
        reply.end({ ok: true, explanation: await explain(this.c.layers, this.c.names, mergedPath(req.path)) });
      },
    };
  }
}
