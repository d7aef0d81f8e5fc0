// explain: why a merged path resolves as it does. For each layer, top-down,
// what that layer itself has at the path (absent, a whiteout and its form, a
// directory and its opaque marker, a file's type, size and mtime), and what
// part it plays in the merged view: the winner, merged below the winner, or
// left out, with the marker or object in a higher layer that left it out.
//
// Built on lookup.ts (the same resolveChild the overlay serves from), so the
// answer is the overlay's own decision, never a second implementation of it.
// Everything here reads the layers directly: no cache, no mount needed.
import { hasCode } from './errors';
import type { Layer } from './layer';
import { resolveChild, resolveRoot, winner, type Resolution, type StopReason } from './lookup';
import { baseName, components, layerPath, parentOf, ROOT, type LayerPath, type MergedPath } from './paths';
import { readMergedDir } from './readdir';
import { isDir, typeName, type Stat } from './stat';
import {
  hasWhFile,
  isCharWhiteout,
  isWhiteoutName,
  readDirMarkers,
  WHITEOUT_PREFIX,
  whiteoutFormOf,
  type OpaqueForm,
  type WhiteoutForm,
} from './whiteout';

/** What one layer holds at the path, read from that layer alone. */
export type LayerHas =
  | { kind: 'absent'; why?: string }
  | { kind: 'whiteout'; form: WhiteoutForm }
  | { kind: 'object'; type: string; size: number; mtimeNs: bigint; opaque?: OpaqueForm };

export type Role =
  /** Serves the path: its attributes, its data. */
  | 'winner'
  /** A directory merged below the winner: its entries show. */
  | 'merged'
  /** This layer's whiteout decides: the name is hidden below it. */
  | 'whiteout'
  /** Has something, left out by a higher layer (see `by`). */
  | 'hidden'
  /** Has nothing here. */
  | 'absent';

export interface LayerExplained {
  index: number;
  name: string;
  root: string;
  has: LayerHas;
  role: Role;
  /** For 'hidden' and for absences caused by a higher layer: what decided it. */
  why?: string;
}

export interface Explanation {
  path: MergedPath;
  present: boolean;
  /** The winning layer's name, if present. */
  winner?: string;
  type?: string;
  /** One sentence: which layer wins and why, or what hides the path. */
  verdict: string;
  layers: LayerExplained[];
  /** For a present directory: each merged entry and the layer it comes from. */
  entries?: { name: string; type: string; layer: string }[];
}

async function lstatOrNull(layer: Layer, p: LayerPath): Promise<Stat | null> {
  try {
    return await layer.lstat(p);
  } catch (err) {
    if (hasCode(err, 'ENOENT', 'ENOTDIR')) return null;
    throw err;
  }
}

function object(st: Stat): LayerHas & { kind: 'object' } {
  return { kind: 'object', type: typeName(st.mode), size: st.size, mtimeNs: st.mtimeNs };
}

/** What layer has at path, on its own (markers read as the overlay reads them). */
async function layerHas(layer: Layer, path: MergedPath): Promise<LayerHas> {
  const lp = layerPath(path);
  if (path === ROOT) return object(await layer.lstat(lp));
  const parentLp = layerPath(parentOf(path));
  const st = await lstatOrNull(layer, lp);
  if (st === null) {
    const parent = await lstatOrNull(layer, parentLp);
    if (parent === null || !isDir(parent)) return { kind: 'absent', why: 'no parent directory in this layer' };
    if (await hasWhFile(layer, parentLp, baseName(path))) return { kind: 'whiteout', form: 'wh-file' };
    return { kind: 'absent' };
  }
  if (isCharWhiteout(st)) return { kind: 'whiteout', form: 'chardev' };
  const parentMarkers = await readDirMarkers(layer, parentLp);
  const form = await whiteoutFormOf(layer, lp, st, parentMarkers);
  if (form !== undefined) return { kind: 'whiteout', form };
  const has = object(st);
  if (isDir(st)) {
    const m = await readDirMarkers(layer, lp);
    if (m.opaque !== undefined) has.opaque = m.opaque;
  }
  return has;
}

function describeStop(stop: StopReason, at: MergedPath, names: readonly string[]): string {
  switch (stop.kind) {
    case 'whiteout':
      return `whiteout (${stop.form}) in ${names[stop.layer]} at ${at}`;
    case 'opaque':
      return `${names[stop.layer]}'s directory ${at} is opaque (${stop.form})`;
    case 'non-directory':
      return `${names[stop.layer]} has a non-directory at ${at}`;
    case 'non-directory-below':
      return `${names[stop.layer]} has a non-directory at ${at} below a directory above it`;
    case 'reserved-name':
      return `names starting with ${WHITEOUT_PREFIX} are markers, never shown`;
  }
}

const inEntries = (r: Resolution | undefined, i: number): boolean => r !== undefined && r.entries.some((e) => e.layer === i);

/**
 * Explains path against layers (top-down; layers[0] is the upper if any).
 * names are the layers' display names.
 */
export async function explain(layers: readonly Layer[], names: readonly string[], path: MergedPath): Promise<Explanation> {
  // The merged resolution of every prefix: chain[0] is the root, chain[k] the
  // first k components; undefined from the first prefix that is absent or not
  // a directory (nothing below it exists).
  const parts = components(path);
  const chain: (Resolution | undefined)[] = [await resolveRoot(layers)];
  let blockedAt: { at: MergedPath; why: string } | undefined;
  for (let k = 0; k < parts.length; k++) {
    const parent = chain[k];
    const top = parent && winner(parent);
    if (parent === undefined || top === undefined || !isDir(top.stat)) {
      if (parent !== undefined && blockedAt === undefined) {
        if (top !== undefined) {
          blockedAt = { at: parent.path, why: `${parent.path} is a ${typeName(top.stat.mode)} in ${names[top.layer]}, not a directory` };
        } else if (parent.stop !== undefined) {
          blockedAt = { at: parent.path, why: `hidden by a ${describeStop(parent.stop, parent.path, names)}` };
        } else {
          // Absent without a marker of its own: the ancestor's own reason.
          const hiddenBy = chain
            .slice(0, k)
            .reverse()
            .find((r) => r !== undefined && r.stop?.kind === 'opaque');
          blockedAt = { at: parent.path, why: hiddenBy?.stop ? `hidden: ${describeStop(hiddenBy.stop, hiddenBy.path, names)}` : `${parent.path} is in no layer` };
        }
      }
      chain.push(undefined);
      continue;
    }
    chain.push(await resolveChild(layers, parent, parts[k]));
  }
  const final = chain[parts.length];
  const out: LayerExplained[] = [];
  for (let i = 0; i < layers.length; i++) {
    const has = await layerHas(layers[i], path);
    const e: LayerExplained = { index: i, name: names[i], root: layers[i].root, has, role: 'absent' };
    if (inEntries(final, i)) {
      e.role = final!.entries[0].layer === i ? 'winner' : 'merged';
    } else {
      // The first prefix whose merge left this layer out, and what did.
      for (let k = 1; k <= parts.length; k++) {
        if (inEntries(chain[k], i)) continue;
        const at = `/${parts.slice(0, k).join('/')}` as MergedPath;
        const r = chain[k];
        if (!inEntries(chain[k - 1], i)) break; // left out above; recorded there
        if (r === undefined) {
          e.why = blockedAt?.why;
        } else if (r.stop !== undefined && r.stop.kind !== 'reserved-name' && r.stop.layer < i) {
          e.why = describeStop(r.stop, at, names);
        } else if (r.stop !== undefined && r.stop.kind === 'non-directory-below' && r.stop.layer === i) {
          e.why = describeStop(r.stop, at, names);
        } else if (r.stop?.kind === 'whiteout' && r.stop.layer === i) {
          e.role = k === parts.length ? 'whiteout' : 'absent';
          if (k < parts.length) e.why = `its own whiteout at ${at}`;
        } else if (r.stop?.kind === 'reserved-name') {
          e.why = describeStop(r.stop, at, names);
        } else if (k < parts.length) {
          e.why = `no directory ${at} in this layer`;
        }
        break;
      }
      if (e.role === 'absent' && has.kind !== 'absent') {
        if (has.kind === 'whiteout' && e.why === undefined) {
          // A marker the lookup did not need: nothing below it to hide.
          e.role = 'whiteout';
          e.why = 'hides nothing: no layer below it has the name';
        } else if (e.role === 'absent') {
          e.role = 'hidden';
          e.why ??= 'left out of the merge';
        }
      }
    }
    out.push(e);
  }

  const top = final && winner(final);
  if (top !== undefined) {
    const w = out[top.layer];
    const above = out.slice(0, top.layer).filter((l) => l.has.kind !== 'absent');
    let verdict = `${w.name} wins: `;
    verdict += top.layer === 0 ? 'it is the top layer' : above.length === 0 ? `no layer above it has ${path}` : `the layers above have only markers that hide nothing here`;
    const merged = out.filter((l) => l.role === 'merged').map((l) => l.name);
    if (merged.length > 0) verdict += `; merged with ${merged.join(', ')}`;
    if (final!.stop !== undefined && final!.stop.kind !== 'reserved-name' && final!.stop.kind !== 'non-directory') {
      verdict += `; the merge stops: ${describeStop(final!.stop, path, names)}`;
    } else if (final!.stop?.kind === 'non-directory' && out.some((l) => l.role === 'hidden')) {
      verdict += '; a non-directory hides everything below it';
    }
    const x: Explanation = { path, present: true, winner: w.name, type: typeName(top.stat.mode), verdict, layers: out };
    if (isDir(top.stat)) {
      x.entries = (await readMergedDir(layers, final!)).map((d) => ({ name: d.name, type: typeName(d.type), layer: names[d.layer] }));
    }
    return x;
  }
  let verdict: string;
  if (final === undefined) verdict = blockedAt?.why ?? 'a parent is missing';
  else if (isWhiteoutName(baseName(path)) && path !== ROOT) verdict = `not in the merged view: ${describeStop({ kind: 'reserved-name' }, path, names)}`;
  else if (final.stop?.kind === 'whiteout') verdict = `hidden by a ${describeStop(final.stop, path, names)}`;
  else {
    const hidden = out.find((l) => l.role === 'hidden');
    verdict = hidden !== undefined ? `hidden: ${hidden.why}` : 'in no layer';
  }
  return { path, present: false, verdict, layers: out };
}
