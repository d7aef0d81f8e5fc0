// Selecting trace records: by op (FUSE's names, any case: lookup, OPEN),
// path glob, pid and errno. Used live (trace
// tail, in the daemon) and on files (trace query, as SQL): one definition of
// the glob, SQLite's GLOB: '*' any characters including '/', '?' one, '[...]'
// a class; case-sensitive.
import type { TraceRecord } from './record';

export interface TraceFilter {
  ops?: string[];
  path?: string;
  pid?: number;
  errno?: number;
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      // '[^...]' negates, as in SQLite's GLOB (and in RegExp).
      const cls = glob.slice(i + 1, end);
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function matcher(f: TraceFilter): (r: TraceRecord) => boolean {
  const ops = f.ops?.map((o) => o.toLowerCase());
  const path = f.path !== undefined ? globToRegExp(f.path) : undefined;
  return (r) =>
    (ops === undefined || ops.includes(r.op)) &&
    (path === undefined || path.test(r.path) || (r.path2 !== undefined && path.test(r.path2))) &&
    (f.pid === undefined || r.pid === f.pid) &&
    (f.errno === undefined || r.errno === f.errno);
}

/** The same filter as an SQL condition with its parameters. */
export function toSql(f: TraceFilter): { where: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  if (f.ops !== undefined && f.ops.length > 0) {
    conds.push(`op IN (${f.ops.map(() => '?').join(',')})`);
    params.push(...f.ops.map((o) => o.toLowerCase()));
  }
  if (f.path !== undefined) {
    conds.push('(path GLOB ? OR path2 GLOB ?)');
    params.push(f.path, f.path);
  }
  if (f.pid !== undefined) {
    conds.push('pid = ?');
    params.push(f.pid);
  }
  if (f.errno !== undefined) {
    conds.push('errno = ?');
    params.push(f.errno);
  }
  return { where: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
}
