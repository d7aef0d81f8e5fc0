// Tracing, the control channel and explain, against live mounts: recorded
// decisions (layer served, whiteout written, copy-up, opaque directory),
// status, trace on/off, live tail, invalidate after a direct upper deletion,
// and explain mounted and offline on a fixture with every marker form.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { describeIfFuse, tmpdir } from '../helpers/env';
import { anyMountUnder, CLI, mountLayerfs, type Mounted } from '../helpers/mount';
import { native } from '../../src/native';

interface Cli {
  status: number | null;
  stdout: string;
  stderr: string;
}

describeIfFuse('tracing, control channel and explain on a live mount', () => {
  let base: string;
  let runtime: string;
  const mounts: Mounted[] = [];
  const children: number[] = [];

  const cli = (args: string[]): Cli => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, LAYERFS_RUNTIME_DIR: runtime }, timeout: 20000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const jsonOf = (r: Cli): any => {
    if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const jsonLines = (r: Cli): any[] => r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));

  /** Every marker form the overlay reads, spread over upper, lower1, lower2. */
  function build(dir: string): { upper: string; work: string; l1: string; l2: string; mnt: string } {
    const s = { upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), l1: path.join(dir, 'l1'), l2: path.join(dir, 'l2'), mnt: path.join(dir, 'mnt') };
    for (const d of Object.values(s)) fs.mkdirSync(d, { recursive: true });
    const put = (root: string, p: string, content = 'x') => {
      fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
      fs.writeFileSync(path.join(root, p), content);
    };
    put(s.l2, 'only2', 'only in lower2\n');
    for (const p of ['wo/chr', 'wo/wh', 'wo/xa', 'wo2/uxa', 'op/hidden', 'opq/hidden', 'uop/hidden', 'fop/hidden', 'd/b']) put(s.l2, p, 'lower2');
    put(s.l1, 'victim', 'v');
    put(s.l1, 'w', 'lower1 data');
    put(s.l1, 'd/b', 'lower1 b');
    put(s.l1, 'op/mine');
    put(s.l1, 'opq/mine');
    put(s.l1, 'opq/.wh..wh..opq', '');
    put(s.l1, 'wo/.wh.wh', '');
    put(s.l1, 'wo/xa', '');
    native().mknod(path.join(s.l1, 'wo/chr'), 0o020000, 0, 0);
    native().lsetxattr(path.join(s.l1, 'wo'), 'trusted.overlay.opaque', Buffer.from('x'), 0);
    native().lsetxattr(path.join(s.l1, 'wo/xa'), 'trusted.overlay.whiteout', Buffer.from(''), 0);
    native().lsetxattr(path.join(s.l1, 'op'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
    put(s.l1, 'wo2/uxa', '');
    native().lsetxattr(path.join(s.l1, 'wo2'), 'user.overlay.opaque', Buffer.from('x'), 0);
    native().lsetxattr(path.join(s.l1, 'wo2/uxa'), 'user.overlay.whiteout', Buffer.from(''), 0);
    put(s.l1, 'fop/mine');
    native().lsetxattr(path.join(s.l1, 'fop'), 'user.fuseoverlayfs.opaque', Buffer.from('y'), 0);
    put(s.upper, 'uop/new');
    native().lsetxattr(path.join(s.upper, 'uop'), 'user.overlay.opaque', Buffer.from('y'), 0);
    put(s.upper, 'd/a', 'upper a');
    return s;
  }

  async function mount(s: ReturnType<typeof build>, extra: string[] = []): Promise<Mounted> {
    const m = await mountLayerfs(`lowerdir=${s.l1}:${s.l2},upperdir=${s.upper},workdir=${s.work}`, s.mnt, extra, { LAYERFS_RUNTIME_DIR: runtime });
    mounts.push(m);
    // The control socket opens just after the kernel's INIT (with -f, the mount shows first).
    const deadline = Date.now() + 10000;
    while (cli(['status', m.mountpoint, '--json']).status !== 0) {
      if (Date.now() > deadline) throw new Error(`no control socket: ${m.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return m;
  }

  beforeEach(() => {
    base = tmpdir('lfs-control-');
    runtime = path.join(base, 'run');
  });
  afterEach(async () => {
    for (const pid of children.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ended
      }
    }
    for (const m of mounts.splice(0)) await m.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('a traced mount records the layer served, the whiteout written, the copy-up and the opaque directory', async () => {
    const s = build(base);
    const trace = path.join(base, 'trace.sqlite');
    const m = await mount(s, [`--trace=${trace}`]);
    expect(fs.readFileSync(path.join(m.mountpoint, 'only2'), 'utf8')).toBe('only in lower2\n');
    fs.unlinkSync(path.join(m.mountpoint, 'victim'));
    fs.appendFileSync(path.join(m.mountpoint, 'w'), '+');
    expect(fs.existsSync(path.join(m.mountpoint, 'op/hidden'))).toBe(false);
    expect(jsonOf(cli(['trace', 'off', m.mountpoint, '--json']))).toMatchObject({ ok: true, tracing: false, file: trace });

    const q = (...args: string[]) => jsonLines(cli(['trace', 'query', trace, '--json', ...args]));
    const reads = q('--op', 'READ', '--path', '/only2');
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((r) => r.layer === 'lower2')).toBe(true);
    const lookup = q('--op', 'LOOKUP', '--path', '/only2')[0];
    expect(lookup).toMatchObject({ layer: 'lower2', decision: 'served by lower2', errno: 0, cache: 'miss' });
    expect(lookup.comm).toBe(fs.readFileSync('/proc/self/comm', 'utf8').trim());
    expect(lookup.pid).toBe(process.pid);

    const unlink = q('--op', 'UNLINK')[0];
    expect(unlink).toMatchObject({ path: '/victim', errno: 0, marker: 'whiteout (chardev) at /victim', layer: 'lower1' });

    const open = q('--op', 'OPEN', '--path', '/w')[0];
    expect(open.copyupBytes).toBe('lower1 data'.length);
    expect(open.copyupUs).toBeGreaterThan(0);
    expect(open.decision).toContain('copy-up of /w from lower1');

    const hidden = q('--op', 'LOOKUP', '--path', '/op/hidden', '--errno', 'ENOENT')[0];
    expect(hidden.decision).toBe('absent below opaque directory /op (trusted.overlay.opaque) in lower1');

    const sum = jsonOf(cli(['trace', 'summary', trace, '--json']));
    expect(sum.records).toBeGreaterThan(5);
    expect(sum.ops.map((o: { op: string }) => o.op)).toEqual(expect.arrayContaining(['lookup', 'read', 'unlink', 'open']));
    expect(sum.byLayer.find((l: { layer: string }) => l.layer === 'lower2').count).toBeGreaterThan(0);
    expect(sum.copyUps).toEqual([expect.objectContaining({ size: '<= 4 KiB', count: 1, bytes: 11 })]);
    expect(sum.errors.find((e: { errno: string }) => e.errno === 'ENOENT').count).toBeGreaterThan(0);
    expect(sum.meta.mountpoint).toBe(m.mountpoint);
    const text = cli(['trace', 'summary', trace]);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('slowest calls');
    expect(text.stdout).not.toContain('\x1b['); // piped: no colours
    expect(cli(['trace', 'query', trace, '--path', '/nothing*']).status).toBe(3);
  });

  test('status reports layers, ops, latencies, cache and copy-ups; trace on/off works without a remount', async () => {
    const s = build(base);
    const m = await mount(s);
    fs.readFileSync(path.join(m.mountpoint, 'only2'));
    fs.appendFileSync(path.join(m.mountpoint, 'w'), '+');
    const st = jsonOf(cli(['status', m.mountpoint, '--json']));
    expect(st.layers.map((l: { name: string }) => l.name)).toEqual(['upper', 'lower1', 'lower2']);
    expect(st.layers[2].root).toBe(s.l2);
    expect(st.ops.lookup).toBeGreaterThan(0);
    expect(st.latencyUs.lookup.p50).toBeGreaterThan(0);
    expect(st.latencyUs.lookup.p99).toBeGreaterThanOrEqual(st.latencyUs.lookup.p50);
    expect(st.copyUps).toBe(1);
    expect(st.cache.hitRatio).toBeGreaterThan(0);
    expect(st.cache.hitRatio).toBeLessThan(1);
    expect(st.trace.file).toBeNull();
    expect(st.options).toContain('lowerdir=');
    const text = cli(['status', m.mountpoint]);
    expect(text.stdout).toMatch(/^lookup +\d+/m);

    const t1 = path.join(base, 't1.sqlite');
    expect(jsonOf(cli(['trace', 'on', m.mountpoint, '--file', t1, '--json']))).toMatchObject({ tracing: true, file: t1 });
    expect(jsonOf(cli(['status', m.mountpoint, '--json'])).trace.file).toBe(t1);
    fs.statSync(path.join(m.mountpoint, 'd/b'));
    jsonOf(cli(['trace', 'off', m.mountpoint, '--json']));
    const before = jsonLines(cli(['trace', 'query', t1, '--json']));
    expect(before.some((r) => r.path === '/d/b' && r.op === 'lookup')).toBe(true);
    fs.statSync(path.join(m.mountpoint, 'd/a')); // not traced
    expect(jsonLines(cli(['trace', 'query', t1, '--json']))).toHaveLength(before.length);
    expect(jsonOf(cli(['status', m.mountpoint, '--json'])).trace.file).toBeNull();

    // Default trace file, in the runtime directory, mode 0600 like the socket.
    const on = jsonOf(cli(['trace', 'on', m.mountpoint, '--json']));
    expect(path.dirname(on.file)).toBe(runtime);
    expect(fs.statSync(on.file).mode & 0o777).toBe(0o600);
    const sock = fs.readdirSync(runtime).find((f) => f.endsWith('.sock'))!;
    expect(fs.statSync(path.join(runtime, sock)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(runtime).mode & 0o777).toBe(0o700);
  });

  test('trace tail streams live records, filtered by path glob', async () => {
    const s = build(base);
    const m = await mount(s);
    const out: string[] = [];
    const tail = spawn(process.execPath, [CLI, 'trace', 'tail', m.mountpoint, '--json', '--path', '/tailme*'], { env: { ...process.env, LAYERFS_RUNTIME_DIR: runtime } });
    children.push(tail.pid!);
    tail.stdout.setEncoding('utf8');
    tail.stdout.on('data', (d: string) => out.push(d));
    // Connected once status counts the tail.
    const deadline = Date.now() + 10000;
    while (jsonOf(cli(['status', m.mountpoint, '--json'])).trace.tails !== 1) {
      if (Date.now() > deadline) throw new Error('tail never connected');
      await new Promise((r) => setTimeout(r, 50));
    }
    fs.writeFileSync(path.join(m.mountpoint, 'tailme1'), 'x');
    fs.statSync(path.join(m.mountpoint, 'only2'));
    const until = Date.now() + 10000;
    while (!out.join('').includes('"create"') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    tail.kill('SIGTERM');
    const recs = out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    expect(recs.map((r) => r.op)).toEqual(expect.arrayContaining(['lookup', 'create']));
    expect(recs.every((r) => r.path.startsWith('/tailme'))).toBe(true);
    // The tail going away unhooks the tracer.
    const gone = Date.now() + 10000;
    while (jsonOf(cli(['status', m.mountpoint, '--json'])).trace.tails !== 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    expect(jsonOf(cli(['status', m.mountpoint, '--json'])).trace.tails).toBe(0);
  });

  test('after a direct deletion in the upper, layerfs invalidate shows the lower version at once', async () => {
    const s = build(base);
    const m = await mount(s);
    const w = path.join(m.mountpoint, 'w');
    fs.writeFileSync(w, 'a much longer upper version');
    expect(fs.statSync(w).size).toBe(27);
    fs.rmSync(path.join(s.upper, 'w')); // behind the mount, as Nix does
    expect(fs.statSync(w).size).toBe(27); // the kernel and the daemon still hold the old state
    expect(jsonOf(cli(['invalidate', m.mountpoint, w, '--json']))).toMatchObject({ ok: true, invalidated: '/w' });
    expect(fs.statSync(w).size).toBe('lower1 data'.length);
    expect(fs.readFileSync(w, 'utf8')).toBe('lower1 data');
    // Everything, without a path.
    fs.rmSync(path.join(s.upper, 'd/a'));
    expect(jsonOf(cli(['invalidate', m.mountpoint, '--json']))).toMatchObject({ invalidated: '/' });
    expect(fs.readdirSync(path.join(m.mountpoint, 'd')).sort()).toEqual(['b']);
    // A symlink's target (cached by the kernel) replaced behind the mount.
    const sl = path.join(m.mountpoint, 'sl');
    fs.symlinkSync('first', sl);
    expect(fs.readlinkSync(sl)).toBe('first');
    fs.rmSync(path.join(s.upper, 'sl'));
    fs.symlinkSync('second', path.join(s.upper, 'sl'));
    expect(fs.readlinkSync(sl)).toBe('first');
    cli(['invalidate', m.mountpoint, sl]);
    expect(fs.readlinkSync(sl)).toBe('second');
  });

  test('explain, mounted and offline, on every marker form', async () => {
    const s = build(base);
    const m = await mount(s);
    const offline = (p: string, json = true) => cli(['explain', '--lower', `${s.l1}:${s.l2}`, '--upper', s.upper, p, ...(json ? ['--json'] : [])]);
    const mounted = (p: string, json = true) => cli(['explain', path.join(m.mountpoint, p), ...(json ? ['--json'] : [])]);
    const cases: [string, number, string][] = [
      ['/only2', 0, 'lower2 wins: no layer above it has /only2'],
      ['/wo/chr', 3, 'hidden by a whiteout (chardev) in lower1 at /wo/chr'],
      ['/wo/wh', 3, 'hidden by a whiteout (wh-file) in lower1 at /wo/wh'],
      ['/wo/xa', 3, 'hidden by a whiteout (xattr) in lower1 at /wo/xa'],
      ['/op/hidden', 3, "hidden: lower1's directory /op is opaque (trusted.overlay.opaque)"],
      ['/opq/hidden', 3, "hidden: lower1's directory /opq is opaque (.wh..wh..opq)"],
      ['/uop/hidden', 3, "hidden: upper's directory /uop is opaque (user.overlay.opaque)"],
      ['/wo2/uxa', 3, 'hidden by a whiteout (xattr) in lower1 at /wo2/uxa'],
      ['/fop/hidden', 3, "hidden: lower1's directory /fop is opaque (user.fuseoverlayfs.opaque)"],
    ];
    for (const [p, status, verdict] of cases) {
      const a = offline(p);
      const b = mounted(p);
      expect([p, a.status, b.status]).toEqual([p, status, status]);
      const xa = JSON.parse(a.stdout);
      expect(xa.verdict).toBe(verdict);
      expect(JSON.parse(b.stdout)).toEqual(xa);
    }
    const d = JSON.parse(mounted('/d').stdout);
    expect(d.entries).toEqual([
      { name: 'a', type: 'file', layer: 'upper' },
      { name: 'b', type: 'file', layer: 'lower1' },
    ]);
    expect(d.layers.map((l: { role: string }) => l.role)).toEqual(['winner', 'merged', 'merged']);
    const text = mounted('/wo/chr', false);
    expect(text.stdout).toMatch(/^lower1 +whiteout \(chardev\) +whiteout/m);
    expect(text.stdout).toMatch(/^lower2 +file, 6 B, mtime \S+ \S+ +hidden +whiteout \(chardev\) in lower1 at \/wo\/chr/m);
  });

  test('bad input: one line, non-zero exit, no stack', () => {
    fs.mkdirSync(path.join(base, 'plain'));
    const cases: [string[], number, RegExp][] = [
      [['status', path.join(base, 'plain')], 1, /is not a mountpoint/],
      [['status', '/proc'], 1, /is a proc mount, not layerfs/],
      [['trace', 'summary', path.join(base, 'none.sqlite')], 1, /no such trace file/],
      [['trace', 'query', path.join(base, 'plain'), '--errno', 'EBOGUS'], 2, /unknown errno 'EBOGUS'/],
      [['explain', '/x', '--lower', path.join(base, 'missing')], 2, /lower layer .* (does not exist|no such)/i],
      [['explain', path.join(base, 'plain')], 1, /is not inside a layerfs mount/],
      [['explain', '../x', '--lower', base], 2, /path component '\.\.' not allowed/],
      [['trace', 'tail', path.join(base, 'plain'), '--pid', 'abc'], 2, /--pid needs a process id, not 'abc'/],
      [['trace', 'on', path.join(base, 'plain')], 1, /is not a mountpoint/],
    ];
    for (const [args, status, msg] of cases) {
      const r = cli(args);
      expect([args.join(' '), r.status]).toEqual([args.join(' '), status]);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
