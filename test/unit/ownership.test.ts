// Ownership pieces without a mount: the override xattr format (as
// containers/storage and fuse-overlayfs write it) and id mapping.
import { IdMap } from '../../src/core/idmap';
import { formatOverride, makeDev, parseOverride } from '../../src/core/override-stat';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFREG, type Stat } from '../../src/core/stat';
import { parseMountOptions, UsageError } from '../../src/mount/options';

const real = (mode: number): Stat => ({
  dev: 1n, ino: 2n, mode, nlink: 1, uid: 1000, gid: 1000, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n,
});

describe('user.containers.override_stat values', () => {
  test.each([
    ['0:0:0644:file', S_IFREG | 0o644, [0, 0, S_IFREG | 0o644, 0]],
    ['0:0:4755', S_IFREG | 0o644, [0, 0, S_IFREG | 0o4755, 0]],
    ['5:6:755', S_IFREG | 0o644, [5, 6, S_IFREG | 0o755, 0]],
    ['0:0:0755:dir', S_IFDIR | 0o700, [0, 0, S_IFDIR | 0o755, 0]],
    ['0:0:0620:char-1-3', S_IFREG | 0o600, [0, 0, S_IFCHR | 0o620, makeDev(1, 3)]],
    ['0:6:0660:block-8-0', S_IFREG | 0o600, [0, 6, S_IFBLK | 0o660, makeDev(8, 0)]],
  ])('%s is read as its owner, mode, type and device', (v, mode, want) => {
    const o = parseOverride(v, real(mode))!;
    expect([o.uid, o.gid, o.mode, o.rdev]).toEqual(want);
  });

  test('what is not in the format, or would turn a file into a directory or symlink, is not taken as is', () => {
    for (const v of ['', 'x:0:0644', '0:0', '0:0:9999', '0:0:0644:weird', '0:0:0644:char-a-b']) expect(parseOverride(v, real(S_IFREG | 0o644))).toBeUndefined();
    expect(parseOverride('0:0:0755:dir', real(S_IFREG | 0o644))!.mode).toBe(S_IFREG | 0o755);
    expect(parseOverride('0:0:0644:file', real(S_IFDIR | 0o755))!.mode).toBe(S_IFDIR | 0o644);
    expect(parseOverride('0:0:0777:symlink', real(S_IFREG | 0o644))!.mode).toBe(S_IFREG | 0o777);
  });

  test('written as containers/storage writes it, and read back the same', () => {
    for (const [uid, gid, mode, rdev, text] of [
      [0, 0, S_IFREG | 0o644, 0, '0:0:0644:file'],
      [1001, 1012, S_IFDIR | 0o755, 0, '1001:1012:0755:dir'],
      [0, 0, S_IFREG | 0o4755, 0, '0:0:4755:file'],
      [1000, 1001, S_IFCHR | 0o600, makeDev(10, 11), '1000:1001:0600:char-10-11'],
    ] as const) {
      expect(formatOverride({ uid, gid, mode, rdev })).toBe(text);
      const back = parseOverride(text, real(mode & S_IFDIR ? S_IFDIR : S_IFREG))!;
      expect([back.uid, back.gid, back.mode, back.rdev]).toEqual([uid, gid, mode, rdev]);
    }
  });
});

describe('id mapping', () => {
  const ranges = (v: string) => parseMountOptions([`lowerdir=/l,uidmapping=${v}`]).ids.uids!;

  test('uidmapping triples map on-disk ids to shown ones and back; others become the overflow id', () => {
    const m = new IdMap({ uids: ranges('0:1000:1:1:100000:65536'), gids: ranges('0:2000:1'), overflowUid: 65534, overflowGid: 65533 });
    expect([m.shownUid(0), m.shownUid(1), m.shownUid(65536), m.shownUid(65537)]).toEqual([1000, 100000, 165535, 65534]);
    expect([m.diskUid(1000), m.diskUid(100005), m.diskUid(5)]).toEqual([0, 6, 65534]);
    expect([m.shownGid(0), m.shownGid(1), m.diskGid(2000)]).toEqual([2000, 65533, 0]);
    expect(m.identity).toBe(false);
  });

  test('squash_to_uid/gid beat squash_to_root, and only what is shown is squashed', () => {
    const root = new IdMap({ squashToRoot: true });
    expect([root.shownUid(1234), root.shownGid(99), root.diskUid(1234)]).toEqual([0, 0, 1234]);
    const both = new IdMap({ squashToRoot: true, squashToUid: 7 });
    expect([both.shownUid(1), both.shownGid(1)]).toEqual([7, 0]);
    expect(new IdMap().identity).toBe(true);
  });

  test('bad mappings are usage errors naming the option', () => {
    for (const v of ['0:1000', 'a:b:c', '0:0:0', '4294967295:0:2']) {
      expect(() => parseMountOptions([`lowerdir=/l,uidmapping=${v}`])).toThrow(UsageError);
    }
    expect(ranges(':0:100:10000')).toEqual([{ disk: 0, shown: 100, count: 10000 }]);
  });
});
