// The client end of the control channel (see server.ts): finds the socket of
// the layerfs mount at a path and sends one request.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { mountAt, readMountinfo } from '../mount/mountinfo';
import { socketPath } from './runtime';

export class ControlError extends Error {}

/** The mountpoint of the layerfs mount at mountpoint (exactly), or an error saying why not. */
export function layerfsMountAt(mountpoint: string): string {
  // Only the parent is resolved: a stat of the mountpoint itself would go to
  // the daemon, and a hung daemon would hang the client.
  const abs = path.resolve(mountpoint);
  let real: string;
  try {
    real = abs === '/' ? abs : path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch (err) {
    throw new ControlError(`${mountpoint}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  const top = mountAt(real);
  if (top === undefined) throw new ControlError(`${real} is not a mountpoint`);
  if (top.fstype !== 'fuse.layerfs') throw new ControlError(`${real} is a ${top.fstype} mount, not layerfs`);
  return real;
}

/** The innermost layerfs mount containing path, and path relative to it ('/'-rooted). */
export function layerfsMountOf(p: string): { mountpoint: string; inside: string } {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    // A hidden or absent path: resolve its parent, keep the last name.
    const abs = path.resolve(p);
    if (abs === '/') throw new ControlError(`${p} is not inside a layerfs mount`);
    const r = layerfsMountOf(path.dirname(abs));
    return { mountpoint: r.mountpoint, inside: path.posix.join(r.inside, path.basename(abs)) };
  }
  const mounts = readMountinfo().filter((m) => m.fstype === 'fuse.layerfs' && (real === m.mountpoint || real.startsWith(m.mountpoint === '/' ? '/' : `${m.mountpoint}/`)));
  mounts.sort((a, b) => b.mountpoint.length - a.mountpoint.length);
  const m = mounts[0];
  if (m === undefined) throw new ControlError(`${p} is not inside a layerfs mount`);
  return { mountpoint: m.mountpoint, inside: real === m.mountpoint ? '/' : real.slice(m.mountpoint.length) };
}

function connect(mountpoint: string): Promise<net.Socket> {
  const sock = socketPath(mountpoint);
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    c.once('connect', () => resolve(c));
    c.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new ControlError(`no control socket for ${mountpoint} (${sock}): is its daemon running, and started by this user?`));
      else if (err.code === 'EACCES') reject(new ControlError(`${sock}: permission denied (the mount belongs to another user)`));
      else reject(new ControlError(`${sock}: ${err.message}`));
    });
  });
}

/** Sends one request and returns the one reply line; ok:false replies throw. */
export async function request(mountpoint: string, req: object): Promise<Record<string, unknown>> {
  const lines: Record<string, unknown>[] = [];
  await stream(mountpoint, req, (obj) => {
    lines.push(obj);
    return false;
  });
  const r = lines[0];
  if (r === undefined) throw new ControlError(`the daemon of ${mountpoint} closed the connection without answering`);
  return r;
}

/**
 * Sends one request and hands each reply line to onLine until it returns
 * false or the daemon closes. ok:false lines throw.
 */
export async function stream(mountpoint: string, req: object, onLine: (obj: Record<string, unknown>) => boolean): Promise<void> {
  const c = await connect(mountpoint);
  c.setEncoding('utf8');
  c.write(`${JSON.stringify(req)}\n`);
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      c.destroy();
      if (err) reject(err);
      else resolve();
    };
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while (!done && (nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(line) as Record<string, unknown>;
        } catch {
          finish(new ControlError('malformed reply from the daemon'));
          return;
        }
        if (obj.ok === false) {
          finish(new ControlError(String(obj.error)));
          return;
        }
        if (!onLine(obj)) finish();
      }
    });
    c.on('end', () => finish());
    c.on('error', (err) => finish(new ControlError(err.message)));
  });
}
