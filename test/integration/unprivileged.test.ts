// Mounting without root, for real: the test (root, as in CI) makes an
// unprivileged user and runs the scenario suite (helpers/scenarios.js) as
// that user, once on layerfs mounted through fusermount3 beside kernel
// overlayfs mounted by root with userxattr, and once inside `unshare -Urm`,
// where that user is root and mounts both itself. Each step must give the
// same result on both, and the trees must match. Then each layerfs upper is
// mounted by kernel overlayfs, and must show the same tree (owners aside:
// see DESIGN.md on override xattrs, which the kernel does not read).
//
// The distribution defaults this needs are put in place for the run and put
// back after: /dev/fuse at mode 0666, and the user (removed if made here).
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { describeIfKernelOverlay, tmpdir } from '../helpers/env';
import { anyMountUnder, CLI, forceUnmount, mountKernelOverlay, mountLayerfs, REPO, type Mounted } from '../helpers/mount';
import { snapshot } from '../helpers/stack';
import { fusermountHelper } from '../../src/mount/fusermount';
import { native } from '../../src/native';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { build } = require('../helpers/scenarios') as { build: (l1: string, l2: string, ids: { uid: number; gid: number }, n: unknown) => void };

const USER = 'layerfs-test';

type Steps = Record<string, Array<[string, string]>>;
interface MountResult {
  steps?: Steps;
  tree?: Record<string, string>;
  error?: string;
}
interface RunResult {
  uid: number;
  gid: number;
  mounts: Record<string, MountResult>;
}

interface Stack {
  lower1: string;
  lower2: string;
  upper: string;
  work: string;
  mnt: string;
}

function unshareWorks(): boolean {
  return spawnSync('unshare', ['-Urm', 'true']).status === 0;
}

const why = process.geteuid?.() !== 0 ? 'not running as root' : fusermountHelper() === undefined ? 'fusermount3 missing (Debian package fuse3; npm test installs it as root)' : undefined;

function ensureUser(): { uid: number; gid: number; made: boolean } {
  let made = false;
  if (spawnSync('id', ['-u', USER]).status !== 0) {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', USER]);
    made = true;
  }
  const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
  return { uid, gid, made };
}

function makeStack(dir: string, ids: { uid: number; gid: number }): Stack {
  const s = { lower1: `${dir}/lower1`, lower2: `${dir}/lower2`, upper: `${dir}/upper`, work: `${dir}/work`, mnt: `${dir}/mnt` };
  fs.mkdirSync(dir, { mode: 0o755 });
  for (const d of Object.values(s)) fs.mkdirSync(d, { mode: 0o755 });
  for (const d of [s.upper, s.work, s.mnt]) fs.chownSync(d, ids.uid, ids.gid);
  build(s.lower1, s.lower2, ids, native());
  return s;
}

const lowerdir = (s: Stack) => `${s.lower1}:${s.lower2}`;
const opts = (s: Stack) => `lowerdir=${lowerdir(s)},upperdir=${s.upper},workdir=${s.work}`;
const withoutOwners = (t: Record<string, string>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.replace(/ uid=\d+ gid=\d+/, '')]));

describeIfKernelOverlay('mounting without root: scenarios as an unprivileged user and as root in a user namespace', () => {
  if (why !== undefined) {
    // eslint-disable-next-line no-console
    console.log(`SKIPPED unprivileged scenarios: ${why}`);
    test.skip('needs root and fusermount3', () => undefined);
    return;
  }
  let base: string;
  let ids: { uid: number; gid: number; made: boolean };
  let fuseMode: number;
  let runDir: string;
  /** The repository as the user reaches it (a copy when the clone is not readable by others). */
  let repo = REPO;
  const runner = () => path.join(repo, 'test', 'helpers', 'scenario-run.js');
  const cli = () => path.join(repo, 'bin', 'layerfs');
  const mounts: Mounted[] = [];

  /** Runs the scenario runner as the test user (inside unshare -Urm when asked). */
  function runAsUser(name: string, cfg: object, userns: boolean): RunResult {
    const file = path.join(base, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify({ cli: cli(), ...cfg }));
    fs.chmodSync(file, 0o644);
    const cmd = [...(userns ? ['unshare', '-Urm'] : []), process.execPath, runner(), file];
    const r = spawnSync('runuser', ['-u', USER, '--', ...cmd], {
      encoding: 'utf8',
      timeout: 240_000,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LAYERFS_RUNTIME_DIR: runDir },
    });
    if (r.status !== 0) throw new Error(`scenario runner failed (${r.status ?? r.signal}): ${r.stderr}`);
    return JSON.parse(r.stdout) as RunResult;
  }

  beforeAll(() => {
    ids = ensureUser();
    fuseMode = fs.statSync('/dev/fuse').mode & 0o777;
    // Distributions ship /dev/fuse crw-rw-rw-; fusermount3 opens it as the user.
    if (fuseMode !== 0o666) fs.chmodSync('/dev/fuse', 0o666);
    base = tmpdir('lfs-unpriv-');
    fs.chmodSync(base, 0o755);
    // The user's daemons' control sockets, removed with base.
    runDir = `${base}/run`;
    fs.mkdirSync(runDir, { mode: 0o700 });
    fs.chownSync(runDir, ids.uid, ids.gid);
    // A clone under a private directory (/root) is out of the user's reach:
    // what the runner and the command need is copied where it can read it.
    if (spawnSync('runuser', ['-u', USER, '--', 'test', '-r', runner()]).status !== 0) {
      repo = `${base}/repo`;
      for (const d of ['bin', 'dist', 'node_modules', 'package.json', 'test/helpers', 'native/build/Release']) {
        fs.mkdirSync(path.dirname(`${repo}/${d}`), { recursive: true });
        execFileSync('cp', ['-a', `${REPO}/${d}`, `${repo}/${d}`]);
      }
      execFileSync('chmod', ['-R', 'a+rX', repo]);
    }
  });

  afterAll(async () => {
    for (const m of mounts.splice(0)) await m.unmount();
    // Daemons the runs started, each named by its pidfile in runDir (also
    // those of a run that died before reporting): alive only if something failed.
    const started = new Set<number>();
    if (runDir !== undefined && fs.existsSync(runDir)) {
      for (const f of fs.readdirSync(runDir)) if (f.endsWith('.pid')) started.add(Number(fs.readFileSync(`${runDir}/${f}`, 'utf8')));
    }
    for (const pid of started) {
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue; // gone, as it should be
      }
      if (cmdline.includes('main.js') || cmdline.includes('bin/layerfs')) process.kill(pid, 'SIGKILL');
    }
    let leftover = false;
    if (base !== undefined) {
      leftover = anyMountUnder(base);
      for (const d of fs.readdirSync(base)) if (fs.existsSync(`${base}/${d}/mnt`)) forceUnmount(`${base}/${d}/mnt`);
      fs.rmSync(base, { recursive: true, force: true });
    }
    // Put back before judging, so that a failure leaves the machine as it was.
    if (fuseMode !== undefined && fuseMode !== 0o666) fs.chmodSync('/dev/fuse', fuseMode);
    if (ids?.made) spawnSync('userdel', [USER]);
    expect(leftover).toBe(false);
  });

  /** Step results must match, scenario by scenario; then the trees. */
  function expectSame(k: MountResult, l: MountResult): void {
    expect(k.error).toBeUndefined();
    expect(l.error).toBeUndefined();
    for (const name of Object.keys(k.steps!)) expect({ name, steps: l.steps![name] }).toEqual({ name, steps: k.steps![name] });
    expect(l.tree).toEqual(k.tree);
  }

  test('as an unprivileged user through fusermount3: every scenario as on kernel overlayfs (userxattr); the upper reads back the same', async () => {
    const k = makeStack(`${base}/user-kernel`, ids);
    const l = makeStack(`${base}/user-layerfs`, ids);
    const km = mountKernelOverlay(`${opts(k)},userxattr`, k.mnt);
    mounts.push(km);
    const res = runAsUser('user', { mounts: [{ name: 'kernel', kind: 'mounted', mnt: k.mnt }, { name: 'layerfs', kind: 'layerfs', ...l, lowerdir: lowerdir(l), pidfile: `${runDir}/user.pid` }] }, false);
    await km.unmount();
    mounts.splice(0);
    expect(res.uid).toBe(ids.uid);
    expectSame(res.mounts.kernel, res.mounts.layerfs);
    // The mount was the user's, through fusermount3, nosuid,nodev.
    const steps = res.mounts.layerfs.steps!;
    expect(steps['copy-up'].find(([s]) => s === 'stat it')![1]).toMatch(/^ok uid=0 gid=0 mode=100644/);
    // The root-owned copy keeps its owner in the override xattr; the upper root is marked.
    expect(native().lgetxattr(`${l.upper}/cu/rootf2`, 'user.containers.override_stat').toString()).toBe('0:0:0644:file');
    expect(fs.lstatSync(`${l.upper}/cu/rootf2`).uid).toBe(ids.uid);
    expect(native().lgetxattr(l.upper, 'user.containers.override_stat').toString()).toMatch(/^\d+:\d+:0755:dir$/);
    // Whiteouts as char 0/0 devices (allowed to users since Linux 5.8), opaque as user.overlay.opaque.
    expect(fs.lstatSync(`${l.upper}/wh/dir`).isCharacterDevice()).toBe(true);
    expect(native().lgetxattr(`${l.upper}/op/e`, 'user.overlay.opaque').toString()).toBe('y');

    // The same upper under layerfs again (as the user) shows the same tree, owners included.
    const again = runAsUser('user-again', { skipSteps: true, mounts: [{ name: 'layerfs', kind: 'layerfs', ...l, lowerdir: lowerdir(l), pidfile: `${runDir}/user2.pid` }] }, false);
    expect(again.mounts.layerfs.error).toBeUndefined();
    expect(again.mounts.layerfs.tree).toEqual(res.mounts.layerfs.tree);
    // Kernel overlayfs (root, userxattr) over layerfs's upper: the same tree,
    // but it does not read override xattrs: owners as on disk, and the
    // xattr shown as an ordinary user.* one (docs/DESIGN.md).
    const kl = mountKernelOverlay(`${opts(l)},userxattr`, l.mnt);
    mounts.push(kl);
    const seen = snapshot(l.mnt).tree;
    await kl.unmount();
    mounts.splice(0);
    const noOverride = (t: Record<string, string>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.replace(/ user\.containers\.override_stat=\S+/, '')]));
    expect(noOverride(withoutOwners(seen))).toEqual(withoutOwners(res.mounts.layerfs.tree!));
    expect(seen['cu/rootf2']).toContain(`uid=${ids.uid}`);
    expect(seen['cu/rootf2']).toContain('user.containers.override_stat=0:0:0644:file');
    // And layerfs (as the user again) over the upper the kernel wrote: the same
    // tree. (The kernel, mounted by root, left a root-owned work/work.)
    execFileSync('chown', ['-R', `${ids.uid}:${ids.gid}`, k.work]);
    const back = runAsUser('user-kernel-upper', { skipSteps: true, mounts: [{ name: 'layerfs', kind: 'layerfs', ...k, lowerdir: lowerdir(k), pidfile: `${runDir}/user3.pid` }] }, false);
    expect(back.mounts.layerfs.error).toBeUndefined();
    expect(back.mounts.layerfs.tree).toEqual(res.mounts.kernel.tree);
  });

  test('as root in a user namespace (unshare -Urm): every scenario as on kernel overlayfs mounted there with userxattr', async () => {
    if (!unshareWorks()) throw new Error('unshare -Urm refused: user namespaces are disabled on this machine');
    const k = makeStack(`${base}/ns-kernel`, ids);
    const l = makeStack(`${base}/ns-layerfs`, ids);
    const res = runAsUser(
      'userns',
      {
        mounts: [
          { name: 'kernel', kind: 'kernel', ...k, lowerdir: lowerdir(k) },
          { name: 'layerfs', kind: 'layerfs', ...l, lowerdir: lowerdir(l), pidfile: `${runDir}/ns.pid` },
        ],
      },
      true,
    );
    expect(res.uid).toBe(0);
    expectSame(res.mounts.kernel, res.mounts.layerfs);
    // Files of unmapped owners (root outside) show as the overflow id.
    expect(res.mounts.layerfs.tree!['cu/rootdir']).toMatch(/uid=65534 gid=65534/);
    expect(res.mounts.layerfs.tree!['cu/own']).toMatch(/uid=0 gid=0/);
    const kl = mountKernelOverlay(`${opts(l)},userxattr`, l.mnt);
    mounts.push(kl);
    const seen = snapshot(l.mnt).tree;
    await kl.unmount();
    mounts.splice(0);
    expect(withoutOwners(seen)).toEqual(withoutOwners(res.mounts.layerfs.tree!));
    // And the other way: layerfs over the upper the kernel wrote in the
    // namespace (userxattr markers) shows what the kernel showed.
    const lk = await mountLayerfs(opts(k), k.mnt);
    mounts.push(lk);
    const read = snapshot(k.mnt).tree;
    await lk.unmount();
    mounts.splice(0);
    expect(withoutOwners(read)).toEqual(withoutOwners(res.mounts.kernel.tree!));
  });

  test("allow_other is refused to a user with one clear line when /etc/fuse.conf does not allow it; nothing is mounted", () => {
    const conf = fs.existsSync('/etc/fuse.conf') ? fs.readFileSync('/etc/fuse.conf', 'utf8') : '';
    const s = makeStack(`${base}/allow-other`, ids);
    const r = spawnSync('runuser', ['-u', USER, '--', process.execPath, cli(), 'mount', '-o', `${opts(s)},allow_other`, s.mnt], { encoding: 'utf8', cwd: '/' });
    if (/^\s*user_allow_other\s*$/m.test(conf)) {
      expect(r.status).toBe(0);
      spawnSync('runuser', ['-u', USER, '--', process.execPath, cli(), 'umount', s.mnt]);
      return;
    }
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/allow_other.*user_allow_other/);
    expect(anyMountUnder(s.mnt)).toBe(false);
  });
});

describeIfKernelOverlay('ownership options: squash_to_*, uidmapping/gidmapping, override xattrs (files owned by several ids)', () => {
  let base: string;
  const mounts: Mounted[] = [];
  beforeEach(() => {
    base = tmpdir('lfs-owners-');
  });
  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  /** A lower with files owned by 0, 1000, 1001 and 100005, and an empty upper. */
  function stack(): Stack {
    const s = { lower1: `${base}/lower`, lower2: '', upper: `${base}/upper`, work: `${base}/work`, mnt: `${base}/mnt` };
    for (const d of [s.lower1, s.upper, s.work, s.mnt]) fs.mkdirSync(d);
    for (const [name, uid] of [['root', 0], ['u1000', 1000], ['u1001', 1001], ['u100005', 100005]] as const) {
      fs.writeFileSync(`${s.lower1}/${name}`, name);
      fs.chownSync(`${s.lower1}/${name}`, uid, uid);
    }
    return s;
  }
  const o = (s: Stack) => `lowerdir=${s.lower1},upperdir=${s.upper},workdir=${s.work}`;
  const owner = (p: string) => {
    const st = fs.lstatSync(p);
    return `${st.uid}:${st.gid}`;
  };

  test('squash_to_root shows every object as 0:0; squash_to_uid/gid take precedence; writes are not squashed', async () => {
    const s = stack();
    let m = await mountLayerfs(`${o(s)},squash_to_root`, s.mnt);
    mounts.push(m);
    for (const n of ['root', 'u1000', 'u1001', 'u100005', '']) expect(owner(`${s.mnt}/${n}`)).toBe('0:0');
    fs.chownSync(`${s.mnt}/u1000`, 1002, 1003);
    expect(owner(`${s.upper}/u1000`)).toBe('1002:1003');
    await m.unmount();
    mounts.splice(0);
    m = await mountLayerfs(`${o(s)},squash_to_root,squash_to_uid=7,squash_to_gid=8`, s.mnt);
    mounts.push(m);
    for (const n of ['root', 'u1000', 'u100005']) expect(owner(`${s.mnt}/${n}`)).toBe('7:8');
  });

  test("uidmapping/gidmapping map on-disk ids to shown ones and back (chown, new files); unmapped ids show as the overflow id", async () => {
    const s = stack();
    const map = '0:1000:1:1000:0:1:100000:5000:10';
    const m = await mountLayerfs(`${o(s)},uidmapping=${map},gidmapping=${map}`, s.mnt);
    mounts.push(m);
    expect(owner(`${s.mnt}/root`)).toBe('1000:1000');
    expect(owner(`${s.mnt}/u1000`)).toBe('0:0');
    expect(owner(`${s.mnt}/u100005`)).toBe('5005:5005');
    expect(owner(`${s.mnt}/u1001`)).toBe('65534:65534');
    // chown through the mount: shown 5003 is 100003 on disk.
    fs.chownSync(`${s.mnt}/u1000`, 5003, 5003);
    expect(owner(`${s.upper}/u1000`)).toBe('100003:100003');
    expect(owner(`${s.mnt}/u1000`)).toBe('5003:5003');
    // A file made by root (shown 0): on disk 1000.
    fs.writeFileSync(`${s.mnt}/new`, 'n');
    expect(owner(`${s.upper}/new`)).toBe('1000:1000');
    expect(owner(`${s.mnt}/new`)).toBe('0:0');
  });

  test('bad mapping options get one line and exit 2', () => {
    const s = stack();
    for (const bad of ['uidmapping=0:1000', 'gidmapping=a:b:c', 'uidmapping=0:0:0', 'squash_to_uid=x', 'xattr_permissions=3']) {
      const r = spawnSync(process.execPath, [CLI, 'mount', '-o', `${o(s)},${bad}`, s.mnt], { encoding: 'utf8' });
      expect({ bad, status: r.status, lines: r.stderr.trim().split('\n').length }).toEqual({ bad, status: 2, lines: 1 });
    }
    expect(anyMountUnder(s.mnt)).toBe(false);
  });

  test("override xattrs in a marked lower are shown (root owner, set-uid, device) and survive copy-up; they are not visible as xattrs", async () => {
    const s = stack();
    const set = (p: string, v: string) => native().lsetxattr(p, 'user.containers.override_stat', Buffer.from(v), 0);
    set(s.lower1, '0:0:0755:dir'); // the layer is marked, as containers/storage marks it
    fs.writeFileSync(`${s.lower1}/dev`, '');
    fs.chownSync(`${s.lower1}/dev`, 1001, 1001);
    set(`${s.lower1}/dev`, '0:0:0620:char-1-3');
    fs.chmodSync(`${s.lower1}/u1001`, 0o755);
    set(`${s.lower1}/u1001`, '0:0:4755:file');
    fs.mkdirSync(`${s.lower1}/d`);
    fs.chownSync(`${s.lower1}/d`, 1001, 1001);
    set(`${s.lower1}/d`, '0:5:0700');
    const m = await mountLayerfs(o(s), s.mnt);
    mounts.push(m);
    const dev = fs.lstatSync(`${s.mnt}/dev`);
    expect(dev.isCharacterDevice()).toBe(true);
    expect([dev.uid, dev.gid, dev.mode & 0o7777, dev.rdev]).toEqual([0, 0, 0o620, (1 << 8) | 3]);
    const su = fs.lstatSync(`${s.mnt}/u1001`);
    expect([su.uid, su.gid, su.mode & 0o7777]).toEqual([0, 0, 0o4755]);
    const d = fs.lstatSync(`${s.mnt}/d`);
    expect([d.isDirectory(), d.uid, d.gid, d.mode & 0o7777]).toEqual([true, 0, 5, 0o700]);
    expect(native().llistxattr(`${s.mnt}/u1001`).filter((x) => x.includes('override'))).toEqual([]);
    // Copy-up (as root: owners set for real) keeps what was shown.
    fs.appendFileSync(`${s.mnt}/u1001`, '+');
    const after = fs.lstatSync(`${s.mnt}/u1001`);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([0, 0, 0o4755]);
    expect(owner(`${s.upper}/u1001`)).toBe('0:0');
  });
});
