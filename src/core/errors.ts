// One error type for the whole overlay: FsError carries a positive errno, its
// code, the syscall and the merged or layer path. Everything that crosses the
// FUSE boundary is turned into a negative errno by toErrno(); unknown errors
// become EIO (and are reported by the adapter, never swallowed silently).
import { constants } from 'os';

const errnoByCode = constants.errno as Record<string, number>;

export type ErrnoCode =
  | 'EPERM' | 'ENOENT' | 'EIO' | 'EBADF' | 'EACCES' | 'EEXIST' | 'EXDEV' | 'ENOTDIR'
  | 'EISDIR' | 'EINVAL' | 'ENOSPC' | 'EROFS' | 'EMLINK' | 'ERANGE' | 'ENAMETOOLONG'
  | 'ENOSYS' | 'ENOTEMPTY' | 'ELOOP' | 'ENODATA' | 'EOPNOTSUPP' | 'ENOTSUP' | 'ESTALE'
  | 'EBUSY' | 'EFBIG' | 'EOVERFLOW' | 'ETXTBSY' | 'EAGAIN' | 'EINTR' | 'ENXIO' | 'ENOTCONN';

export class FsError extends Error {
  /** Positive errno value, as in <errno.h>. */
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly path: string | undefined;

  constructor(code: string, syscall: string, path?: string, detail?: string) {
    const errno = errnoByCode[code] ?? errnoByCode.EIO;
    // No stack: an FsError is an answer (ENOENT for a name in no layer), not
    // a bug, and capturing the stack was the largest cost of a negative
    // lookup in daemon profiles.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${code}: ${detail ?? code}, ${syscall}${path !== undefined ? ` '${path}'` : ''}`);
    Error.stackTraceLimit = limit;
    this.name = 'FsError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    this.path = path;
  }
}

export function fsError(code: ErrnoCode, syscall: string, path?: string, detail?: string): FsError {
  return new FsError(code, syscall, path, detail);
}

const codeByErrno = new Map(Object.entries(errnoByCode).map(([code, n]) => [n, code]));

/** The FsError for a positive errno a system call returned (EIO if unknown). */
export function errnoError(errno: number, syscall: string, path?: string): FsError {
  return new FsError(codeByErrno.get(errno) ?? 'EIO', syscall, path);
}

interface NodeLikeError {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  message?: unknown;
}

/** Wraps Node fs / native addon errors (negative errno, string code) as FsError. */
export function asFsError(err: unknown, syscall = 'unknown', path?: string): FsError {
  if (err instanceof FsError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodeLikeError;
  const code = typeof e.code === 'string' && e.code in errnoByCode ? e.code : undefined;
  if (code !== undefined) {
    return new FsError(
      code,
      typeof e.syscall === 'string' ? e.syscall : syscall,
      typeof e.path === 'string' ? e.path : path,
      typeof e.message === 'string' ? e.message : undefined,
    );
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new FsError('EIO', syscall, path, `unexpected error: ${detail}`);
}

/** True when err is an FsError (or Node fs error) with the given code. */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeLikeError).code as string);
}

/**
 * The negative errno FUSE expects for any thrown value. Errors that are not
 * filesystem errors (bugs) map to EIO; isUnexpected() tells the caller to log them.
 */
export function toErrno(err: unknown): number {
  if (err instanceof FsError) return -err.errno;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodeLikeError;
  if (typeof e.code === 'string' && e.code in errnoByCode) return -errnoByCode[e.code];
  return -errnoByCode.EIO;
}

export function isUnexpected(err: unknown): boolean {
  if (err instanceof FsError) return false;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodeLikeError;
  return !(typeof e.code === 'string' && e.code in errnoByCode);
}
