// mkdir -p, without Node's recursive mkdirSync: on Node 20,
// mkdirSync('/proc/x', { recursive: true }) never returns (mkdir(2) there
// answers ENOENT although the parent exists, and Node retries the parent
// forever), so a mistyped --index-dir or XDG_RUNTIME_DIR hung the command.
import * as fs from 'fs';
import * as path from 'path';

function code(err: unknown): unknown {
  return (err as NodeJS.ErrnoException).code;
}

/** Makes dir and any missing parents (mode for each new one); an existing directory is fine. */
export function mkdirs(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; ) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
    if (st !== undefined) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: p });
      break;
    }
    missing.push(p);
    const parent = path.dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const p of missing.reverse()) {
    try {
      fs.mkdirSync(p, { mode });
    } catch (err) {
      if (code(err) !== 'EEXIST') throw err;
    }
  }
}
