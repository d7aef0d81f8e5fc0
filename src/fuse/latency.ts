// Request latencies per FUSE operation, for `layerfs status`: a log-scale
// histogram per op (four buckets per power of two of microseconds, so a
// percentile is exact to within 19%). Always on: one Math.log2 and one
// increment per request, nothing allocated.
const BUCKETS = 112; // up to 2^28 us, about 4.5 minutes

export class Latencies {
  private readonly byOp = new Map<string, Uint32Array>();

  add(op: string, us: number): void {
    let h = this.byOp.get(op);
    if (h === undefined) {
      h = new Uint32Array(BUCKETS);
      this.byOp.set(op, h);
    }
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(us) * 4));
    h[i]++;
  }

  /** Per op: count and the 50th/90th/99th percentiles and max, in microseconds (bucket upper bounds). */
  summary(): Record<string, { count: number; p50: number; p90: number; p99: number; max: number }> {
    const out: Record<string, { count: number; p50: number; p90: number; p99: number; max: number }> = {};
    for (const [op, h] of this.byOp) {
      let count = 0;
      for (const c of h) count += c;
      const at = (q: number): number => {
        const want = Math.ceil(q * count);
        let seen = 0;
        for (let i = 0; i < BUCKETS; i++) {
          seen += h[i];
          if (seen >= want) return Math.round(2 ** (i / 4));
        }
        return Math.round(2 ** ((BUCKETS - 1) / 4));
      };
      let last = 0;
      for (let i = 0; i < BUCKETS; i++) if (h[i] > 0) last = i;
      out[op] = { count, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Math.round(2 ** (last / 4)) };
    }
    return out;
  }
}
