import { MetadataCache } from '../../src/cache/metadata';
import { parseMountOptions, splitEscaped, unescape, UsageError } from '../../src/mount/options';

describe('mount option parsing', () => {
  test('lowerdir keeps kernel order, leftmost first', () => {
    const o = parseMountOptions(['lowerdir=/a:/b:/c']);
    expect(o.lowerdirs).toEqual(['/a', '/b', '/c']);
    expect(o.upperdir).toBeUndefined();
  });

  test('escaped ":" and "," stay in paths, as the kernel accepts them', () => {
    const o = parseMountOptions(['lowerdir=/x\\:y:/p\\,q,upperdir=/u\\,1,workdir=/w']);
    expect(o.lowerdirs).toEqual(['/x:y', '/p,q']);
    expect(o.upperdir).toBe('/u,1');
    expect(splitEscaped('a\\,b,c', ',')).toEqual(['a\\,b', 'c']);
    expect(unescape('a\\\\b')).toBe('a\\b');
  });

  test('repeated -o add up; standard flags are kept or accepted', () => {
    const o = parseMountOptions(['rw,lowerdir=/l', 'nodev,nosuid,noatime,relatime,x-systemd.automount']);
    expect(o.mountFlags).toEqual(['nodev', 'nosuid', 'noatime']);
    expect(o.ignored).toEqual(['relatime', 'x-systemd.automount']);
  });

  test.each([
    [['upperdir=/u,workdir=/w'], /no lowerdir/],
    [['lowerdir=/l,upperdir=/u'], /upperdir given without workdir/],
    [['lowerdir=/l,workdir=/w'], /workdir given without upperdir/],
    [['lowerdir=/l,bogus'], /unknown mount option 'bogus'/],
    [['lowerdir=/l,metacopy=on'], /metacopy=on.*not supported/],
    [['lowerdir=/a::/b'], /data-only/],
    [['lowerdir='], /needs a value/],
    [['lowerdir=/a::'], /data-only/],
    [['lowerdir=/a:'], /empty path/],
    [['lowerdir=/l,spin=-1'], /'spin' needs a whole number/],
    [['lowerdir=/l,spin=1000000'], /'spin' is in microseconds, at most 100000/],
    [['lowerdir=/l,readahead_kb=1m'], /'readahead_kb' needs a whole number/],
    [['lowerdir=/l,readahead_kb=2000000'], /'readahead_kb' is in KiB, at most 1048576/],
    [['lowerdir=/l,max_nodes=5'], /'max_nodes' must be at least 10/],
    [['lowerdir=/l,max_nodes=many'], /'max_nodes' needs a whole number/],
    [['lowerdir=/l,cache_entries=99999999999'], /'cache_entries' is at most 10000000/],
    [['lowerdir=/l,cache_mb=-1'], /'cache_mb' needs a whole number/],
  ])('%j is refused', (opts, msg) => {
    expect(() => parseMountOptions(opts)).toThrow(UsageError);
    expect(() => parseMountOptions(opts)).toThrow(msg);
  });

  test('cache_entries=0 or cache_mb=0 turns the daemon cache off (an lru-cache error before, for cache_mb=0)', () => {
    for (const o of ['cache_entries=0', 'cache_mb=0']) {
      const c = parseMountOptions([`lowerdir=/l,${o}`]).cache;
      expect(new MetadataCache({ maxEntries: c.maxEntries, maxBytes: c.maxBytes }).enabled).toBe(false);
    }
    const c = parseMountOptions(['lowerdir=/l,cache_entries=1000,cache_mb=1']).cache;
    expect(new MetadataCache({ maxEntries: c.maxEntries, maxBytes: c.maxBytes }).enabled).toBe(true);
  });

  test('max_nodes= bounds the kernel inodes held (default 100 000)', () => {
    expect(parseMountOptions(['lowerdir=/l']).cache.maxNodes).toBe(100_000);
    expect(parseMountOptions(['lowerdir=/l,max_nodes=5000']).cache.maxNodes).toBe(5000);
  });

  test('readahead_kb= sets the mount read-ahead window; 0 keeps the kernel one', () => {
    expect(parseMountOptions(['lowerdir=/l']).readaheadKb).toBe(1024);
    expect(parseMountOptions(['lowerdir=/l,readahead_kb=0']).readaheadKb).toBe(0);
    expect(parseMountOptions(['lowerdir=/l,readahead_kb=4096']).readaheadKb).toBe(4096);
  });

  test('spin= sets how long the daemon polls before sleeping; 0 turns it off', () => {
    expect(parseMountOptions(['lowerdir=/l']).spinUsec).toBe(200);
    expect(parseMountOptions(['lowerdir=/l,spin=0']).spinUsec).toBe(0);
    expect(parseMountOptions(['lowerdir=/l,spin=500']).spinUsec).toBe(500);
  });

  test('POSIX ACLs are enforced by the kernel unless noacl is given', () => {
    expect(parseMountOptions(['lowerdir=/l']).posixAcl).toBe(true);
    expect(parseMountOptions(['lowerdir=/l,noacl']).posixAcl).toBe(false);
  });

  test('the source becomes fsname unless fsname= is given', () => {
    expect(parseMountOptions(['lowerdir=/l'], 'mystore').fsname).toBe('mystore');
    expect(parseMountOptions(['lowerdir=/l,fsname=x'], 'mystore').fsname).toBe('x');
  });
});
