// Output for people: aligned tables, and colours only on a terminal (and
// never with NO_COLOR set). Piped output is plain text; --json is for scripts.
const useColor = (): boolean => process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';

const wrap = (code: string) => (s: string): string => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = wrap('1');
export const dim = wrap('2');
export const red = wrap('31');
export const green = wrap('32');
export const yellow = wrap('33');
export const cyan = wrap('36');

// eslint-disable-next-line no-control-regex
const visible = (s: string): number => s.replace(/\x1b\[[0-9;]*m/g, '').length;

/** Rows aligned in columns; numbers (and cells starting with a digit) right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => visible(r[c] ?? ''))));
  const right = header.map((_, c) => rows.length > 0 && rows.every((r) => /^[\d.,%<>=-]/.test(r[c] ?? '0') || (r[c] ?? '') === ''));
  const fmt = (r: string[], head: boolean) =>
    r
      .map((cell, c) => {
        const pad = ' '.repeat(widths[c] - visible(cell ?? ''));
        const text = head ? bold(cell) : cell ?? '';
        return right[c] ? pad + text : c === r.length - 1 ? text : text + pad;
      })
      .join('  ')
      .trimEnd();
  return [fmt(header, true), ...rows.map((r) => fmt(r, false))].join('\n');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}

export function micros(us: number): string {
  if (us < 1000) return `${Math.round(us)} us`;
  if (us < 1e6) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

/** Nanoseconds since the epoch (number, bigint or decimal string) as an ISO time. */
export function isoTime(ns: unknown): string {
  const n = typeof ns === 'bigint' ? ns : BigInt(String(ns));
  const ms = Number(n / 1000000n);
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}
