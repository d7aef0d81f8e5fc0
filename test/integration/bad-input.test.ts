// Bad input: one clear line on stderr, a non-zero exit, and nothing mounted.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { describeIfFuse, describeIfKernelOverlay, tmpdir } from '../helpers/env';
import { anyMountUnder, CLI, forceUnmount, mountKernelOverlay, mountLayerfs, run, type Mounted } from '../helpers/mount';

describe('bad input to layerfs mount', () => {
  let b: string;
  const extraMounts: string[] = [];

  beforeAll(() => {
    b = tmpdir('lfs-bad-');
    for (const d of ['l1', 'l2', 'up', 'work', 'mnt', 'mnt/inner', 'l1/sub']) fs.mkdirSync(`${b}/${d}`);
    fs.writeFileSync(`${b}/file`, 'x');
    fs.mkdirSync(`${b}/badwork`);
    fs.writeFileSync(`${b}/badwork/work`, 'a file where workdir/work must be a directory');
  });
  afterAll(() => {
    for (const m of extraMounts) forceUnmount(m);
    expect(anyMountUnder(b)).toBe(false);
    fs.rmSync(b, { recursive: true, force: true });
  });

  function expectRefused(args: string[], message: RegExp, mountpoint = `${b}/mnt`): void {
    const r = run(CLI, args);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect({ status: r.status, lines }).toEqual({ status: expect.any(Number), lines: [expect.stringMatching(/^layerfs: /)] });
    expect(r.status).not.toBe(0);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(anyMountUnder(mountpoint)).toBe(false);
  }

  const cases: [string, () => string[], RegExp][] = [
    ['missing lowerdir', () => ['mount', '-o', `lowerdir=${b}/nope`, `${b}/mnt`], /lowerdir '.*\/nope' does not exist/],
    ['lowerdir that is a file', () => ['mount', '-o', `lowerdir=${b}/file`, `${b}/mnt`], /lowerdir '.*\/file' is not a directory/],
    ['missing upperdir', () => ['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/nope,workdir=${b}/work`, `${b}/mnt`], /upperdir '.*' does not exist/],
    ['layer inside the mountpoint', () => ['mount', '-o', `lowerdir=${b}/mnt/inner`, `${b}/mnt`], /lowerdir '.*\/mnt\/inner' is inside the mountpoint/],
    ['mountpoint inside a layer', () => ['mount', '-o', `lowerdir=${b}/l2:${b}/l1`, `${b}/l1/sub`], /mountpoint '.*\/l1\/sub' is inside lowerdir/],
    ['mountpoint is a layer', () => ['mount', '-o', `lowerdir=${b}/l1`, `${b}/l1`], /lowerdir '.*' is the mountpoint itself/],
    ['no lowerdir', () => ['mount', '-o', `upperdir=${b}/up,workdir=${b}/work`, `${b}/mnt`], /no lowerdir given/],
    ['no -o at all', () => ['mount', `${b}/mnt`], /no lowerdir given/],
    ['upperdir without workdir', () => ['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/up`, `${b}/mnt`], /upperdir given without workdir/],
    ['workdir without upperdir', () => ['mount', '-o', `lowerdir=${b}/l1,workdir=${b}/work`, `${b}/mnt`], /workdir given without upperdir/],
    ['upperdir overlapping a lowerdir', () => ['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/l1/sub,workdir=${b}/work`, `${b}/mnt`], /upperdir '.*' and lowerdir '.*' overlap/],
    ['workdir inside upperdir', () => ['mount', '-o', `lowerdir=${b}/l2,upperdir=${b}/l1,workdir=${b}/l1/sub`, `${b}/mnt`], /workdir '.*' and upperdir '.*' overlap/],
    ['unusable workdir', () => ['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/up,workdir=${b}/badwork`, `${b}/mnt`], /workdir '.*\/badwork' is not usable/],
    ['unknown option', () => ['mount', '-o', `lowerdir=${b}/l1,frobnicate`, `${b}/mnt`], /unknown mount option 'frobnicate'/],
    ['missing mountpoint', () => ['mount', '-o', `lowerdir=${b}/l1`, `${b}/nope`], /mountpoint '.*\/nope' does not exist/],
    ['mountpoint that is a file', () => ['mount', '-o', `lowerdir=${b}/l1`, `${b}/file`], /mountpoint '.*\/file' is not a directory/],
    ['no mountpoint argument', () => ['mount', '-o', `lowerdir=${b}/l1`], /Not enough non-option arguments/],
    ['unknown flag', () => ['mount', '--frob', '-o', `lowerdir=${b}/l1`, `${b}/mnt`], /Unknown argument/],
  ];
  test.each(cases)('%s', (_name, args, message) => expectRefused(args(), message));

  test('background form reports the same one line', () => {
    expectRefused(['-o', `lowerdir=${b}/nope`, `${b}/mnt`], /lowerdir '.*\/nope' does not exist/);
  });

  describeIfFuse('needing mounts', () => {
    test('upper and work on different filesystems', () => {
      fs.mkdirSync(`${b}/tmpfs`);
      expect(spawnSync('mount', ['-t', 'tmpfs', 'lfs-test', `${b}/tmpfs`]).status).toBe(0);
      extraMounts.push(`${b}/tmpfs`);
      fs.mkdirSync(`${b}/tmpfs/work`);
      expectRefused(['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/up,workdir=${b}/tmpfs/work`, `${b}/mnt`], /are on different filesystems/);
    });

    test('workdir on a read-only filesystem', () => {
      fs.mkdirSync(`${b}/rofs`);
      expect(spawnSync('mount', ['-t', 'tmpfs', 'lfs-test', `${b}/rofs`]).status).toBe(0);
      extraMounts.push(`${b}/rofs`);
      fs.mkdirSync(`${b}/rofs/up`);
      fs.mkdirSync(`${b}/rofs/work`);
      expect(spawnSync('mount', ['-o', 'remount,ro', `${b}/rofs`]).status).toBe(0);
      expectRefused(['mount', '-o', `lowerdir=${b}/l1,upperdir=${b}/rofs/up,workdir=${b}/rofs/work`, `${b}/mnt`], /workdir '.*' is not usable: EROFS/);
    });

    describeIfKernelOverlay('with kernel overlayfs as the oracle', () => {
      /** Whether kernel overlayfs mounts these layers (unmounting again at once). */
      async function kernelMounts(opts: string): Promise<boolean> {
        let k: Mounted;
        try {
          k = mountKernelOverlay(opts, `${b}/mnt`);
        } catch {
          return false;
        }
        await k.unmount();
        return true;
      }

      test('a workdir a volatile mount marked is refused until the mark goes, whoever made it', async () => {
        for (const maker of ['layerfs', 'kernel']) {
          const v = `${b}/vol-${maker}`;
          for (const d of ['up', 'work']) fs.mkdirSync(`${v}/${d}`, { recursive: true });
          const opts = `lowerdir=${b}/l1,upperdir=${v}/up,workdir=${v}/work`;
          const m = maker === 'layerfs' ? await mountLayerfs(`${opts},volatile`, `${b}/mnt`) : mountKernelOverlay(`${opts},volatile`, `${b}/mnt`);
          try {
            fs.writeFileSync(`${b}/mnt/kept`, maker);
          } finally {
            await m.unmount();
          }
          expect(fs.readdirSync(`${v}/work/work/incompat/volatile`)).toEqual(['dirty']); // the kernel's layout
          expectRefused(['mount', '-o', opts, `${b}/mnt`], /workdir '.*vol-\w+\/work' is marked with incompatible feature 'volatile' \(.*\/work\/incompat\/volatile\): a volatile mount used these layers/);
          expectRefused(['mount', '-o', `${opts},volatile`, `${b}/mnt`], /incompatible feature 'volatile'/);
          expect(await kernelMounts(opts)).toBe(false);
          // The refused mounts left the mark where it was.
          expect(fs.readdirSync(`${v}/work/work/incompat`)).toEqual(['volatile']);
          fs.rmSync(`${v}/work/work/incompat/volatile`, { recursive: true });
          const again = await mountLayerfs(opts, `${b}/mnt`);
          try {
            expect(fs.readFileSync(`${b}/mnt/kept`, 'utf8')).toBe(maker);
          } finally {
            await again.unmount();
          }
          expect(await kernelMounts(opts)).toBe(true);
        }
      });
    });

    test('a mountpoint that is already a dead FUSE mount', async () => {
      fs.mkdirSync(`${b}/dead`);
      const m = await mountLayerfs(`lowerdir=${b}/l1`, `${b}/dead`);
      extraMounts.push(m.mountpoint);
      process.kill(m.pid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      expect(() => fs.statSync(`${b}/dead`)).toThrow(/ENOTCONN/);
      const r = run(CLI, ['mount', '-o', `lowerdir=${b}/l2`, `${b}/dead`]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/^layerfs: mountpoint '.*\/dead' is a dead FUSE mount \(transport endpoint is not connected\); unmount it first\n$/);
      // Still just the one dead mount, and layerfs umount clears it.
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${m.mountpoint} `))).toHaveLength(1);
      expect(run(CLI, ['umount', `${b}/dead`]).status).toBe(0);
      expect(anyMountUnder(`${b}/dead`)).toBe(false);
    });
  });
});
