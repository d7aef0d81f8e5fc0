// The daemon's end of the control channel: a unix socket (mode 0600, in a
// 0700 runtime directory) speaking newline-delimited JSON. A client sends one
// request line {"cmd": ..., ...}; the handler answers with one line
// {"ok": true, ...} or {"ok": false, "error": "..."}, or, for streams (trace
// tail), keeps sending lines until the client goes away.
//
// Everything here runs on the main thread between FUSE requests; handlers
// must be quick (counters, cache drops), never a walk of the layers.
import * as fs from 'fs';
import * as net from 'net';

export interface ControlRequest {
  cmd: string;
  [k: string]: unknown;
}

export interface Reply {
  /** Sends one line; false once the client is gone. */
  send(obj: object): boolean;
  /** Sends a last line (if given) and closes the connection. */
  end(obj?: object): void;
  /** Called once when the client goes away. */
  onClose(fn: () => void): void;
}

export type Handler = (req: ControlRequest, reply: Reply) => void | Promise<void>;

/** Longest request line accepted: requests are small (a path, some filters). */
const MAX_REQUEST = 64 * 1024;

export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
    private readonly ino: number,
  ) {}

  /**
   * Listens on sockPath. A socket left there by a dead daemon is replaced; so
   * is a live one (a mount stacked on the same mountpoint hides the one
   * below: the newest answers for the mountpoint).
   */
  static async listen(sockPath: string, handlers: Record<string, Handler>, onError: (msg: string) => void): Promise<ControlServer> {
    try {
      fs.unlinkSync(sockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = net.createServer((conn) => serveConnection(conn, handlers, onError));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The umask applies to bind(2): no window in which others can connect.
      const old = process.umask(0o177);
      try {
        server.listen(sockPath, () => resolve());
      } finally {
        process.umask(old);
      }
    });
    server.on('error', (err) => onError(`control socket ${sockPath}: ${err.message}`));
    server.unref();
    return new ControlServer(server, sockPath, fs.statSync(sockPath).ino);
  }

  /** Stops listening and removes the socket, if it is still ours. */
  close(): void {
    this.server.close();
    try {
      if (fs.statSync(this.path).ino === this.ino) fs.unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

/** JSON with bigints (nanosecond times) as decimal strings: the control channel's and `--json`'s form. */
export function toJson(obj: unknown): string {
  return JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function line(obj: object): string {
  return `${toJson(obj)}\n`;
}

function serveConnection(conn: net.Socket, handlers: Record<string, Handler>, onError: (msg: string) => void): void {
  let buf = '';
  let closed = false;
  let started = false;
  const closers: Array<() => void> = [];
  const reply: Reply = {
    send(obj) {
      if (closed) return false;
      conn.write(line(obj));
      return true;
    },
    end(obj) {
      if (closed) return;
      if (obj !== undefined) conn.write(line(obj));
      conn.end();
    },
    onClose(fn) {
      if (closed) fn();
      else closers.push(fn);
    },
  };
  const gone = () => {
    if (closed) return;
    closed = true;
    for (const fn of closers.splice(0)) fn();
  };
  conn.on('close', gone);
  conn.on('error', gone);
  conn.setEncoding('utf8');
  conn.on('data', (chunk: string) => {
    if (started) return; // one request per connection
    buf += chunk;
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > MAX_REQUEST) reply.end({ ok: false, error: 'request too long' });
      return;
    }
    started = true;
    let req: ControlRequest;
    try {
      req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('no cmd');
    } catch {
      reply.end({ ok: false, error: 'malformed request' });
      return;
    }
    const h = handlers[req.cmd];
    if (h === undefined) {
      reply.end({ ok: false, error: `unknown command '${req.cmd}'` });
      return;
    }
    Promise.resolve()
      .then(() => h(req, reply))
      .catch((err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        if (!(err as { code?: string }).code) onError(`control command ${req.cmd}: ${err instanceof Error ? (err.stack ?? msg) : msg}`);
        reply.end({ ok: false, error: msg });
      });
  });
}
