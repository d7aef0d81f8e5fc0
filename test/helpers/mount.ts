// Mounting from tests. The layerfs daemon always runs in a child process (a
// FUSE server touching its own mount from its own thread deadlocks); teardown
// unmounts and ends the daemon by pid, even when the test failed.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const REPO = path.resolve(__dirname, '..', '..');
export const CLI = path.join(REPO, 'bin', 'layerfs');

export interface Mounted {
  mountpoint: string;
  pid?: number;
  stderr(): string;
  unmount(): Promise<void>;
}

function mountinfoHas(mountpoint: string, fstype: RegExp): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return f[4] === mountpoint && sep > 0 && fstype.test(f[sep + 1]);
    });
}

export function isMounted(mountpoint: string): boolean {
  return mountinfoHas(fs.realpathSync(mountpoint), /^(fuse|overlay)/);
}

export function anyMountUnder(dir: string): boolean {
  const real = fs.realpathSync(dir);
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => {
    const mp = l.split(' ')[4];
    return mp !== undefined && (mp === real || mp.startsWith(real + '/'));
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Lazily unmounts whatever is mounted at mountpoint (stacked mounts too). */
export function forceUnmount(mountpoint: string): void {
  for (let i = 0; i < 5; i++) {
    let real: string;
    try {
      real = fs.realpathSync(mountpoint);
    } catch {
      real = mountpoint; // a dead FUSE mount cannot be resolved
    }
    if (!mountinfoHas(real, /./)) return;
    spawnSync('umount', ['-l', real], { stdio: 'ignore' });
  }
}

/** Starts `layerfs mount -f` in a child process and waits for the mount to be live. */
export async function mountLayerfs(options: string, mountpoint: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<Mounted> {
  const real = fs.realpathSync(mountpoint);
  const child = spawn(process.execPath, [CLI, 'mount', '-f', '-o', options, ...extraArgs, mountpoint], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15000;
  while (!mountinfoHas(real, /^fuse\.layerfs$/)) {
    if (child.exitCode !== null) throw new Error(`layerfs exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      forceUnmount(real);
      throw new Error(`timeout waiting for layerfs on ${real}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    mountpoint: real,
    pid: child.pid,
    stderr: () => stderr,
    async unmount() {
      spawnSync(CLI, ['umount', real], { stdio: 'ignore' });
      if (!(await waitExit(child, 5000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5000);
      }
      forceUnmount(real);
    },
  };
}

/**
 * The daemon's counters (SIGUSR2 writes them to LAYERFS_STATS_FILE): the
 * mount must have been made with that variable set to `file`.
 */
export async function daemonStats(m: Mounted, file: string): Promise<Record<string, any>> {
  fs.rmSync(file, { force: true });
  process.kill(m.pid!, 'SIGUSR2');
  const deadline = Date.now() + 5000;
  while (!fs.existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function mountKernelOverlay(options: string, mountpoint: string): Mounted {
  const real = fs.realpathSync(mountpoint);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', options, real], { stdio: 'pipe' });
  return {
    mountpoint: real,
    stderr: () => '',
    async unmount() {
      spawnSync('umount', [real], { stdio: 'ignore' });
      forceUnmount(real);
    },
  };
}

/** Runs a command in a child process (never in the jest process's own thread against a mount). */
export function run(cmd: string, args: string[], opts: { input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, input: opts.input });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
