// The metadata cache is never stale: after every mutating operation, the whole
// merged tree as the cached overlay shows it (stats, listings, symlink
// targets, xattrs, and lookups of names that do not exist) equals what a
// fresh, uncached overlay over the same directories shows. Plus the two ways
// layers change behind the overlay's back: a direct deletion in the upper
// followed by invalidate(), and a lower layer that grows.
import * as fs from 'fs';
import * as path from 'path';
import { Overlay } from '../../src/core/overlay';
import { hasCode } from '../../src/core/errors';
import { HostLayer, HostUpperLayer } from '../../src/layers/host';
import { tmpdir } from '../helpers/env';
import { rng } from '../helpers/rng';
import { diffTrees, kernelForms, randomStack, writeStack } from '../helpers/stack';

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];
const O = fs.constants;
/** Opening a fifo made by the mkfifo operation must not wait for a peer. */
const NB = O.O_NONBLOCK;

/** Everything observable about the merged tree, as one map; names absent everywhere included. */
async function view(ov: Overlay): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, depth: number): Promise<void> => {
    const listing = await ov.readdir(dir);
    out[`${dir} ls`] = listing.map((e) => `${e.name}:${e.type.toString(8)}`).sort().join(' ');
    const listed = new Set(listing.map((e) => e.name));
    for (const name of new Set([...NAMES, ...listed])) {
      const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
      let st;
      try {
        st = await ov.getattr(p);
      } catch (err) {
        if (!hasCode(err, 'ENOENT')) throw err;
        out[p] = listed.has(name) ? 'LISTED BUT ENOENT' : 'absent';
        continue;
      }
      // Inode numbers differ on purpose: the mounted overlay keeps copied-up
      // objects' numbers stable, a fresh one shows the upper's.
      out[p] = `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} s${st.size} m${st.mtimeNs} c${st.ctimeNs}`;
      const type = st.mode & 0o170000;
      if (type === 0o120000) out[p] += ` -> ${await ov.readlink(p)}`;
      const xs = (await ov.listxattr(p)).sort();
      for (const x of xs) out[p] += ` ${x}=${(await ov.getxattr(p, x)).toString()}`;
      if (type === 0o040000 && depth < 2) await walk(p, depth + 1);
    }
  };
  await walk('/', 0);
  return out;
}

describe('metadata cache: never stale after a mutation', () => {
  const seeds = (process.env.LAYERFS_CACHE_SEEDS ?? '1,2,3,4').split(',').map(Number);
  const nOps = Number(process.env.LAYERFS_CACHE_OPS ?? 150);

  test.each(seeds)('seed %i: cached view equals an uncached overlay after each of the operations', async (seed) => {
    const base = tmpdir('lfs-cache-');
    try {
      const lowers = writeStack(base, randomStack(seed, 2), kernelForms);
      fs.mkdirSync(path.join(base, 'upper'));
      fs.mkdirSync(path.join(base, 'work/work'), { recursive: true });
      const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
      // Odd seeds volatile (copy-ups committed at once), even ones not (a
      // copy-up by open(2) is committed after the open returns, copyup.ts).
      const ov = await Overlay.open({ layers: [upper, ...lowers.map((l) => new HostLayer(l))], layerNames: ['upper', 'lower1', 'lower2'], upper, volatile: seed % 2 === 1 });
      // The oracle: a new overlay over the same directories, read-only, with no history.
      const fresh = async () =>
        Overlay.open({
          layers: [path.join(base, 'upper'), ...lowers].map((l) => new HostLayer(l)),
          layerNames: ['upper', 'lower1', 'lower2'],
          // Small bounds: lru-cache allocates its arrays up front.
          cache: { maxEntries: 2000, maxBytes: 1 << 22 },
        });
      const r = rng(seed * 7919);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
      // Mostly names that exist (from the last view), sometimes any name.
      let existing: string[] = [];
      const somePath = () => {
        if (existing.length > 0 && r() < 0.75) return pick(existing);
        const depth = 1 + Math.floor(r() * 3);
        return '/' + Array.from({ length: depth }, () => pick(NAMES)).join('/');
      };
      const caller = { uid: 0, gid: 0, pid: 1 };
      const ops: Array<[string, (p: string, q: string) => Promise<unknown>]> = [
        ['create', async (p) => ov.release((await ov.create(p, O.O_CREAT | O.O_WRONLY | NB, 0o644, caller)).fh)],
        ['mkdir', (p) => ov.mkdir(p, 0o755, caller)],
        ['symlink', (p, q) => ov.symlink(q, p, caller)],
        ['mkfifo', (p) => ov.mknod(p, 0o010644, 0, caller)],
        ['unlink', (p) => ov.unlink(p)],
        ['rmdir', (p) => ov.rmdir(p)],
        ['rename', (p, q) => ov.rename(p, q, 0)],
        ['rename-noreplace', (p, q) => ov.rename(p, q, 1)],
        ['rename-exchange', (p, q) => ov.rename(p, q, 2)],
        ['link', (p, q) => ov.link(p, q)],
        ['write', async (p) => {
          const fh = await ov.open(p, O.O_WRONLY | NB);
          try {
            await ov.write(fh, Buffer.from('more data '.repeat(1 + Math.floor(r() * 5))), 10, Math.floor(r() * 100));
          } finally {
            await ov.release(fh);
          }
        }],
        ['open-trunc', async (p) => ov.release(await ov.open(p, O.O_RDONLY | O.O_TRUNC | NB))],
        ['truncate', (p) => ov.setattr(p, { size: Math.floor(r() * 40) })],
        ['chmod', (p) => ov.setattr(p, { mode: pick([0o600, 0o755, 0o1777]) })],
        ['chown', (p) => ov.setattr(p, { uid: pick([0, 1000]), gid: pick([0, 100]) })],
        ['utimes', (p) => ov.setattr(p, { mtime: BigInt(1_600_000_000 + Math.floor(r() * 1e6)) * 1_000_000_000n })],
        ['setxattr', (p) => ov.setxattr(p, 'user.k', Buffer.from(`v${Math.floor(r() * 9)}`), 0)],
        ['removexattr', (p) => ov.removexattr(p, 'user.test')],
      ];
      let checked = 0;
      const counts: Record<string, number> = {};
      for (let i = 0; i < nOps; i++) {
        const [name, fn] = pick(ops);
        const p = somePath();
        const q = r() < 0.5 ? somePath() : path.posix.join(path.posix.dirname(p), pick(NAMES));
        let result = 'ok';
        if (process.env.LAYERFS_CACHE_LOG) process.stderr.write(`-> ${i} ${name} ${p} ${q}\n`);
        try {
          await fn(p, q);
        } catch (err) {
          if (typeof err !== 'object' || err === null || !('code' in err)) throw err;
          result = String((err as { code: string }).code);
        }
        counts[result] = (counts[result] ?? 0) + 1;
        if (process.env.LAYERFS_CACHE_LOG) process.stderr.write(`${i} ${name} ${p} ${q} ${result} ${Date.now() % 100000}\n`);
        const f = await fresh();
        const cached = await view(ov);
        const d = diffTrees(cached, await view(f), 'cached', 'fresh');
        existing = Object.keys(cached).filter((k) => !k.endsWith(' ls') && cached[k] !== 'absent');
        if (d.length > 0) throw new Error(`seed ${seed}, op ${i} ${name} ${p} ${q} -> ${result}:\n${d.slice(0, 10).join('\n')}`);
        checked++;
      }
      expect(checked).toBe(nOps);
      // The operations did something: most of them succeeded, and the cache served hits.
      expect(counts.ok).toBeGreaterThan(nOps / 5);
      expect(ov.cache.stats().hits).toBeGreaterThan(nOps * 10);
      await ov.close();
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('metadata cache: changes behind the overlay', () => {
  let base: string;
  beforeEach(() => {
    base = tmpdir('lfs-cache2-');
    for (const d of ['lower/pkg-1', 'upper/pkg-1', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/pkg-1/file'), 'lower');
    fs.writeFileSync(path.join(base, 'upper/pkg-1/file'), 'upper copy');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  async function open(): Promise<Overlay> {
    const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
    return Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  }

  async function cat(ov: Overlay, p: string): Promise<string> {
    const fh = await ov.open(p, O.O_RDONLY);
    const buf = Buffer.alloc(100);
    const n = await ov.read(fh, buf, 100, 0);
    await ov.release(fh);
    return buf.subarray(0, n).toString();
  }

  test.each([['the path'], ['everything']])(
    'upper copy deleted directly (as Nix GC does), then invalidate(%s): the lower version shows at once',
    async (what) => {
      const ov = await open();
      expect((await ov.getattr('/pkg-1/file')).size).toBe(10);
      expect(await cat(ov, '/pkg-1/file')).toBe('upper copy');
      expect((await ov.readdir('/pkg-1')).map((e) => e.layer)).toEqual([0]);
      fs.rmSync(path.join(base, 'upper/pkg-1'), { recursive: true });
      ov.invalidate(what === 'the path' ? '/pkg-1' : undefined);
      expect((await ov.getattr('/pkg-1/file')).size).toBe(5);
      expect(await cat(ov, '/pkg-1/file')).toBe('lower');
      expect((await ov.readdir('/pkg-1')).map((e) => e.layer)).toEqual([1]);
      expect((await ov.readdir('/')).map((e) => e.name)).toEqual(['pkg-1']);
      await ov.close();
    },
  );

  test('without invalidate, a directly deleted upper file is never an ESTALE or a crash: open re-resolves it', async () => {
    const ov = await open();
    expect((await ov.getattr('/pkg-1/file')).size).toBe(10);
    fs.rmSync(path.join(base, 'upper/pkg-1/file'));
    expect(await cat(ov, '/pkg-1/file')).toBe('lower');
    expect((await ov.getattr('/pkg-1/file')).size).toBe(5);
    await ov.close();
  });

  test('a lower layer that grows: new names show, with cached negative entries and listing before', async () => {
    const ov = await open();
    await expect(ov.getattr('/pkg-2')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await ov.readdir('/')).map((e) => e.name)).toEqual(['pkg-1']);
    const before = ov.cache.stats().hits;
    await expect(ov.getattr('/pkg-2')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(ov.cache.stats().hits).toBeGreaterThan(before); // the negative entry was cached
    fs.mkdirSync(path.join(base, 'lower/pkg-2'));
    fs.writeFileSync(path.join(base, 'lower/pkg-2/bin'), 'new');
    ov.lowerGrew('pkg-2');
    expect((await ov.getattr('/pkg-2/bin')).size).toBe(3);
    expect((await ov.readdir('/')).map((e) => e.name).sort()).toEqual(['pkg-1', 'pkg-2']);
    // Other cached entries stayed: /pkg-1 is still a hit.
    const hits = ov.cache.stats().hits;
    await ov.getattr('/pkg-1/file');
    expect(ov.cache.stats().hits).toBeGreaterThan(hits);
    await ov.close();
  });
});
