// The observing commands: status, invalidate, trace on/off/tail/summary/query,
// explain. Each talks to a running mount's control socket (control/client.ts)
// or reads a trace file / the layers directly, and prints for people (aligned,
// coloured on a terminal) or, with --json, one JSON document per answer (one
// per line for streams).
import * as path from 'path';
import { ControlError, layerfsMountAt, layerfsMountOf, request, stream } from '../control/client';
import { toJson } from '../control/server';
import { explain, type Explanation } from '../core/explain';
import { mergedPath } from '../core/paths';
import { HostLayer } from '../layers/host';
import type { Layer } from '../core/layer';
import type { TraceFilter } from '../trace/filter';
import { errnoName, type TraceRecord } from '../trace/record';
import { query, summarize } from '../trace/report';
import { openTraceFile } from '../trace/store';
import { realDir } from '../mount/validate';
import { UsageError } from '../mount/options';
import { bold, bytes, cyan, dim, green, isoTime, micros, red, table, yellow } from './format';

/** explain's exit status when the path is not in the merged view. */
export const EXIT_ABSENT = 3;

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};
const json = (v: unknown): void => out(toJson(v));

/** A path from the overlay root; '.' and '..' are refused as bad input. */
function checkedPath(p: string): ReturnType<typeof mergedPath> {
  try {
    return mergedPath(p);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export async function runStatus(mountpoint: string, asJson: boolean): Promise<void> {
  const mp = layerfsMountAt(mountpoint);
  const s = (await request(mp, { cmd: 'status' })).status as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (asJson) return json(s);
  const c = s.cache;
  out(`${bold(s.mountpoint)}  daemon pid ${s.pid}, up ${s.uptimeSec} s, RSS ${bytes(s.rssBytes)}`);
  out(`options: ${s.options || dim('(none)')}`);
  out(`whiteouts: ${s.whiteouts}${s.opaque ? `; opaque directories: ${s.opaque}` : ''}`);
  if (s.markerProbe?.length) out(`probed in the work directory: ${s.markerProbe.join('; ')}`);
  out('');
  if (s.owners) out(`owners: ${s.owners}`);
  out(
    table(
      ['layer', 'root', 'served', 'ownership'],
      s.layers.map((l: { name: string; root: string; served: string; override?: string }) => [l.name, l.root, l.served, l.override ? `overrides in ${l.override}` : 'as on disk']),
    ),
  );
  out('');
  const errs = (op: string): string => {
    const e = s.errors[op] as Record<string, number> | undefined;
    return e === undefined ? '' : Object.entries(e).map(([k, v]) => `${k} ${v}`).join(', ');
  };
  const lat = s.latencyUs as Record<string, { count: number; p50: number; p90: number; p99: number; max: number }>;
  const ops = Object.entries(s.ops as Record<string, number>).sort((a, b) => b[1] - a[1]);
  out(table(['op', 'count', 'p50', 'p90', 'p99', 'max', 'errors'], ops.map(([op, n]) => [op, String(n), ...(lat[op] ? [micros(lat[op].p50), micros(lat[op].p90), micros(lat[op].p99), micros(lat[op].max)] : ['', '', '', '']), errs(op)])));
  out('');
  const ratio = c.hitRatio === null ? 'no lookups yet' : `${(c.hitRatio * 100).toFixed(1)}% hits (${c.hits} hits, ${c.misses} misses)`;
  out(`cache: ${c.enabled ? `${ratio}; ${c.entries} entries, ${bytes(c.bytes)}` : 'off (nocache)'}`);
  out(`copy-ups: ${s.copyUps}   kernel nodes: ${s.nodes} (${s.evictions} evicted)   requests: ${s.requests}`);
  const pt = s.passthrough as { off: string | null; files: number };
  out(`passthrough: ${pt.off === null ? `on, ${pt.files} file(s) opened with it` : `off (${pt.off})`}`);
  const t = s.trace;
  out(`tracing: ${t.file ? `${green('on')} -> ${t.file} (${t.written} written, ${t.dropped} dropped by the ring)` : 'off'}${t.tails ? `; ${t.tails} live tail(s)` : ''}`);
}

export async function runInvalidate(mountpoint: string, p: string | undefined, asJson: boolean): Promise<void> {
  const mp = layerfsMountAt(mountpoint);
  let inside: string | undefined;
  if (p !== undefined) {
    // A path inside the mount, or one already relative to its root.
    inside = p.startsWith(`${mp}/`) ? p.slice(mp.length) : p === mp ? '/' : p;
    checkedPath(inside);
  }
  const r = await request(mp, { cmd: 'invalidate', ...(inside !== undefined ? { path: inside } : {}) });
  if (asJson) return json(r);
  out(`${mp}: cached state dropped for ${r.invalidated === '/' ? 'everything' : String(r.invalidated)}`);
}

export async function runTraceSwitch(on: boolean, mountpoint: string, file: string | undefined, asJson: boolean): Promise<void> {
  const mp = layerfsMountAt(mountpoint);
  // Relative to where the command was typed, not to the daemon.
  const r = await request(mp, { cmd: 'trace', on, ...(file !== undefined ? { file: path.resolve(file) } : {}) });
  if (asJson) return json(r);
  if (on) out(`${mp}: tracing to ${String(r.file)}`);
  else out(`${mp}: tracing off${r.file ? ` (records in ${String(r.file)})` : ''}`);
}

function recordLine(r: TraceRecord): string {
  const t = new Date(r.ts).toISOString().slice(11, 23);
  const res = r.errno === 0 ? green('OK') : red(errnoName(r.errno));
  let s = `${dim(t)} ${r.comm}[${r.pid}] ${bold(r.op)} ${r.path}`;
  if (r.path2 !== undefined) s += ` ${r.op.startsWith('RENAME') || r.op === 'LINK' || r.op === 'SYMLINK' ? '->' : ''} ${r.path2}`;
  s += ` = ${res} ${dim(micros(r.durUs))}`;
  if (r.layer !== undefined) s += ` ${cyan(r.layer)}`;
  if (r.cache !== undefined) s += dim(` cache ${r.cache}`);
  if (r.decision !== undefined) s += ` ${r.decision}`;
  if (r.copyupBytes !== undefined) s += yellow(` copy-up ${bytes(r.copyupBytes)} in ${micros(r.copyupUs ?? 0)}`);
  if (r.marker !== undefined) s += yellow(` wrote ${r.marker}`);
  return s;
}

export async function runTraceTail(mountpoint: string, f: TraceFilter, asJson: boolean): Promise<void> {
  const mp = layerfsMountAt(mountpoint);
  let first = true;
  await stream(mp, { cmd: 'tail', filter: f }, (obj) => {
    if (first) {
      first = false;
      if (!asJson) process.stderr.write(`layerfs: tracing ${mp} live; Ctrl-C ends\n`);
      return true;
    }
    if (asJson) json(obj);
    else out(recordLine(obj as unknown as TraceRecord));
    return true;
  });
}

export function runTraceSummary(file: string, asJson: boolean, top: number): void {
  const db = openTraceFile(file);
  try {
    const s = summarize(db, file, top);
    if (asJson) return json(s);
    const span = s.first !== undefined ? `, ${new Date(s.first).toISOString()} to ${new Date(s.last!).toISOString()}` : '';
    out(`${bold(file)}: ${s.records} records${span}${s.meta.mountpoint ? ` (mount ${s.meta.mountpoint})` : ''}`);
    out('');
    out(table(['op', 'count', 'total', 'mean'], s.ops.map((o) => [o.op, String(o.count), micros(o.totalUs), micros(o.meanUs)])));
    out('');
    out(bold('slowest calls'));
    out(table(['duration', 'op', 'path', 'result', 'comm[pid]'], s.slowest.map((r) => [micros(r.durUs), r.op, r.path, errnoName(r.errno), `${r.comm}[${r.pid}]`])));
    out('');
    out(bold('hottest paths'));
    out(table(['count', 'total', 'path'], s.hottestPaths.map((p) => [String(p.count), micros(p.totalUs), p.path])));
    out('');
    out(table(['layer', 'served'], s.byLayer.map((l) => [l.layer, String(l.count)])));
    const looked = s.cache.hits + s.cache.misses;
    out(`cache: ${looked === 0 ? 'no lookups recorded' : `${((s.cache.hits / looked) * 100).toFixed(1)}% hits (${s.cache.hits} of ${looked})`}`);
    out('');
    out(s.copyUps.length === 0 ? 'copy-ups: none' : table(['copy-up size', 'count', 'bytes', 'time'], s.copyUps.map((c) => [c.size, String(c.count), bytes(c.bytes), micros(c.totalUs)])));
    out('');
    out(s.errors.length === 0 ? 'errors: none' : table(['errno', 'count', 'ops'], s.errors.map((e) => [e.errno, String(e.count), e.ops])));
  } finally {
    db.close();
  }
}

export function runTraceQuery(file: string, f: TraceFilter, limit: number, asJson: boolean): number {
  const db = openTraceFile(file);
  try {
    const rows = query(db, f, limit);
    for (const r of rows) {
      if (asJson) json(r);
      else out(recordLine(r));
    }
    return rows.length;
  } finally {
    db.close();
  }
}

function printExplanation(x: Explanation): void {
  const head = x.present ? `${green(x.path)}: ${x.type} from ${bold(x.winner!)}` : `${red(x.path)}: not visible`;
  out(head);
  out(`  ${x.verdict}`);
  out('');
  const has = (h: Explanation['layers'][number]['has']): string => {
    if (h.kind === 'absent') return dim('absent');
    if (h.kind === 'whiteout') return yellow(`whiteout (${h.form})`);
    let s = `${h.type}${h.type === 'file' ? `, ${bytes(h.size)}` : ''}, mtime ${isoTime(h.mtimeNs)}`;
    if (h.opaque !== undefined) s += yellow(`, opaque (${h.opaque})`);
    return s;
  };
  const role = (r: string): string => (r === 'winner' ? green(r) : r === 'hidden' ? red(r) : r === 'whiteout' ? yellow(r) : r === 'merged' ? cyan(r) : dim(r));
  out(table(['layer', 'has', 'role', 'why', 'root'], x.layers.map((l) => [l.name, has(l.has), role(l.role), l.why ?? '', dim(l.root)])));
  if (x.entries !== undefined) {
    out('');
    out(x.entries.length === 0 ? 'entries: none' : table(['entry', 'type', 'from'], x.entries.map((e) => [e.name, e.type, e.layer])));
  }
}

/** explain PATH (inside a mount) or offline over the given layers; returns the exit status. */
export async function runExplain(p: string, offline: { lower?: string; upper?: string }, asJson: boolean): Promise<number> {
  let x: Explanation;
  if (offline.lower !== undefined) {
    const layers: Layer[] = [];
    const names: string[] = [];
    if (offline.upper !== undefined) {
      layers.push(new HostLayer(realDir('upper layer', offline.upper)));
      names.push('upper');
    }
    offline.lower
      .split(':')
      .filter((l) => l !== '')
      .forEach((l, i) => {
        layers.push(new HostLayer(realDir('lower layer', l)));
        names.push(`lower${i + 1}`);
      });
    x = await explain(layers, names, checkedPath(p));
  } else {
    if (offline.upper !== undefined) throw new ControlError('--upper needs --lower (offline explain)');
    const { mountpoint, inside } = layerfsMountOf(p);
    x = (await request(mountpoint, { cmd: 'explain', path: inside })).explanation as Explanation;
  }
  if (asJson) json(x);
  else printExplanation(x);
  return x.present ? 0 : EXIT_ABSENT;
}
