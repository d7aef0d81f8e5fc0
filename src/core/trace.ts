// What the overlay tells a tracer about the decisions it makes. The overlay
// calls these only when a tracer is set (Overlay.trace), so with tracing off
// each call site costs one property read.
//
// Events carry the merged path they are about; the tracer attributes them to
// the request in flight on that path (or below it: a copy-up of a parent
// directory belongs to the request on the child).
import type { Resolution } from './lookup';
import type { MergedPath } from './paths';

export interface TraceHook {
  /** path resolved to r (parent: the parent's resolution), from the cache or from the layers. */
  resolved(path: MergedPath, r: Resolution, parent: Resolution | undefined, cacheHit: boolean): void;
  /** path was copied up from layer `from`: bytes of data, in ns. */
  copiedUp(path: MergedPath, from: number, bytes: number, ns: number): void;
  /** A marker was written at path: a whiteout, or an opaque directory; form as written. */
  marker(path: MergedPath, kind: 'whiteout' | 'opaque', form: string): void;
}
