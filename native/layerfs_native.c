// layerfs native addon: only the system calls Node.js lacks.
//
//   mknod(path, mode, major, minor)            whiteouts (char 0/0) and device nodes
//   lgetxattr(path, name) -> Buffer            xattrs without following symlinks
//   lgetxattrIfSet(path, name) -> Buffer|undefined   (undefined when not set)
//   lgetxattrOrErrno(path, name) -> Buffer|number     (ENODATA/ENOTSUP as a number)
//   lsetxattr(path, name, value, flags)
//   llistxattr(path) -> string[]
//   lremovexattr(path, name)
//   renameat2(from, to, flags)                 RENAME_NOREPLACE / EXCHANGE / WHITEOUT
//   umount2(path, flags)
//   mount(source, target, fstype, flags, data)  mount(2), for the FUSE connection
//   utimensat(path, aSec, aNsec, mSec, mNsec, flags)  nanosecond times, UTIME_NOW/OMIT
//   lstatInto(path, nums, bigs) -> 0 or -errno  lstat(2) into typed arrays, absence
//                                              as an errno: no Stats object, no exception
//   lseek(fd, offset, whence) -> offset        SEEK_DATA / SEEK_HOLE (sparse copy-up)
//   fuseBackingOpen(devfd, fd) -> id or -errno  FUSE_DEV_IOC_BACKING_OPEN: fd becomes a
//                                              backing file the kernel reads and writes
//                                              directly (FUSE passthrough, Linux 6.9+)
//   fuseBackingClose(devfd, id) -> 0 or -errno  FUSE_DEV_IOC_BACKING_CLOSE
//   fallocate(fd, mode, offset, length)
//   pollReadable(fd, callback) -> handle      libuv readiness callback on a raw fd
//   pollStop(handle)                           (the FUSE device: read on the main thread,
//                                              with no threadpool hop per request)
//   readSpin(fd, buf, usec) -> n or -errno     non-blocking read retried for up to usec
//   socketpair() -> [fd, fd]                   AF_UNIX stream pair, close-on-exec
//   setNonblock(fd)                            O_NONBLOCK on an fd Node did not open
//   recvFd(fd) -> fd or -1                     one fd passed with SCM_RIGHTS (fusermount3
//                                              hands over /dev/fuse this way); -1 at EOF
//
// Every call is synchronous and fails by throwing an Error shaped like Node's fs
// errors: message "CODE: strerror, syscall 'path'", and properties code, errno
// (negative, as Node reports it), syscall and path.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>

#define PATH_BUF 4097
#define NAME_BUF 256

static napi_value throw_errno(napi_env env, int err, const char *syscall,
                              const char *path) {
  const char *code = strerrorname_np(err);
  char msg[PATH_BUF + 256];
  if (code == NULL) code = "UNKNOWN";
  if (path != NULL)
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(err), syscall, path);
  else
    snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value m, e, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "code", v);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  if (path != NULL) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "path", v);
  }
  napi_throw(env, e);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

// Copies a JS string argument into buf; returns 0 on success.
static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  if (len + 1 > size) return -2;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) return -1;
  if (strlen(buf) != len) return -3; // embedded NUL
  return 0;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc < want ? -1 : 0;
}

#define ARGS(n)                                                        \
  napi_value argv[n];                                                  \
  if (get_args(env, info, n, argv)) return throw_type(env, "expected " #n " arguments")

#define STR_ARG(var, idx, size)                                        \
  char var[size];                                                      \
  if (get_string(env, argv[idx], var, sizeof var))                     \
    return throw_type(env, "argument " #idx " must be a string without NUL, under " #size " bytes")

#define INT_ARG(var, idx)                                              \
  int64_t var;                                                         \
  if (napi_get_value_int64(env, argv[idx], &var) != napi_ok)           \
    return throw_type(env, "argument " #idx " must be a number")

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  ARGS(4);
  STR_ARG(path, 0, PATH_BUF);
  INT_ARG(mode, 1);
  INT_ARG(major_, 2);
  INT_ARG(minor_, 3);
  if (mknodat(AT_FDCWD, path, (mode_t)mode, makedev((unsigned)major_, (unsigned)minor_)) != 0)
    return throw_errno(env, errno, "mknod", path);
  return undefined(env);
}

// absent: 0 throws when the xattr is not there, 1 returns undefined, 2
// returns the errno (ENODATA, or ENOTSUP where the filesystem has none).
static napi_value getxattr_common(napi_env env, napi_callback_info info, int absent) {
  ARGS(2);
  STR_ARG(path, 0, PATH_BUF);
  STR_ARG(name, 1, NAME_BUF);
  // Size first, then read; retry if the value grew in between (ERANGE).
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0 && absent != 0 && (errno == ENODATA || errno == ENOTSUP)) {
      if (absent == 1) return undefined(env);
      napi_value n;
      napi_create_int32(env, errno, &n);
      return n;
    }
    if (size < 0) return throw_errno(env, errno, "lgetxattr", path);
    void *data = NULL;
    napi_value buf;
    if (napi_create_buffer(env, size > 0 ? (size_t)size : 0, &data, &buf) != napi_ok) return NULL;
    if (size == 0) return buf;
    ssize_t got = lgetxattr(path, name, data, (size_t)size);
    if (got >= 0) {
      if (got == size) return buf;
      napi_value sliced;
      void *d2 = NULL;
      napi_create_buffer_copy(env, (size_t)got, data, &d2, &sliced);
      return sliced;
    }
    if (errno != ERANGE) return throw_errno(env, errno, "lgetxattr", path);
  }
  return throw_errno(env, ERANGE, "lgetxattr", path);
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) { return getxattr_common(env, info, 0); }

// The same, but an xattr that is not set (or not supported there) gives
// undefined instead of an exception: for hot paths where absence is the
// common case, and a thrown error costs more than the system call.
static napi_value js_lgetxattr_if_set(napi_env env, napi_callback_info info) { return getxattr_common(env, info, 1); }

// And this one answers with the errno: a getxattr through the mount must
// tell ENODATA from EOPNOTSUPP, without the cost of an exception (~8 us of
// ~10 for an absent xattr; the kernel asks for security.capability before
// the first write to every file, ls -l for security.selinux on every file).
static napi_value js_lgetxattr_or_errno(napi_env env, napi_callback_info info) { return getxattr_common(env, info, 2); }

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  ARGS(4);
  STR_ARG(path, 0, PATH_BUF);
  STR_ARG(name, 1, NAME_BUF);
  void *data = NULL;
  size_t len = 0;
  bool is_buf = false;
  napi_is_buffer(env, argv[2], &is_buf);
  if (!is_buf) return throw_type(env, "value must be a Buffer");
  napi_get_buffer_info(env, argv[2], &data, &len);
  INT_ARG(flags, 3);
  if (lsetxattr(path, name, data, len, (int)flags) != 0)
    return throw_errno(env, errno, "lsetxattr", path);
  return undefined(env);
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  ARGS(1);
  STR_ARG(path, 0, PATH_BUF);
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) return throw_errno(env, errno, "llistxattr", path);
    char *list = malloc(size > 0 ? (size_t)size : 1);
    if (list == NULL) return throw_errno(env, ENOMEM, "llistxattr", path);
    ssize_t got = size > 0 ? llistxattr(path, list, (size_t)size) : 0;
    if (got < 0) {
      int e = errno;
      free(list);
      if (e == ERANGE) continue;
      return throw_errno(env, e, "llistxattr", path);
    }
    napi_value arr;
    napi_create_array(env, &arr);
    uint32_t i = 0;
    for (ssize_t off = 0; off < got;) {
      size_t n = strnlen(list + off, (size_t)(got - off));
      if (n > 0) {
        napi_value s;
        napi_create_string_utf8(env, list + off, n, &s);
        napi_set_element(env, arr, i++, s);
      }
      off += (ssize_t)n + 1;
    }
    free(list);
    return arr;
  }
  return throw_errno(env, ERANGE, "llistxattr", path);
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  STR_ARG(path, 0, PATH_BUF);
  STR_ARG(name, 1, NAME_BUF);
  if (lremovexattr(path, name) != 0) return throw_errno(env, errno, "lremovexattr", path);
  return undefined(env);
}

static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  ARGS(3);
  STR_ARG(from, 0, PATH_BUF);
  STR_ARG(to, 1, PATH_BUF);
  INT_ARG(flags, 2);
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, (unsigned)flags) != 0)
    return throw_errno(env, errno, "renameat2", from);
  return undefined(env);
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  ARGS(2);
  STR_ARG(path, 0, PATH_BUF);
  INT_ARG(flags, 1);
  if (umount2(path, (int)flags) != 0) return throw_errno(env, errno, "umount2", path);
  return undefined(env);
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(5);
  STR_ARG(source, 0, PATH_BUF);
  STR_ARG(target, 1, PATH_BUF);
  STR_ARG(fstype, 2, NAME_BUF);
  INT_ARG(flags, 3);
  STR_ARG(data, 4, PATH_BUF);
  if (mount(source, target, fstype, (unsigned long)flags, data) != 0)
    return throw_errno(env, errno, "mount", target);
  return undefined(env);
}

// Seconds travel as JS numbers (exact up to 2^53), nanoseconds separately, so
// no precision is lost; nsec may be UTIME_NOW or UTIME_OMIT.
static napi_value js_utimensat(napi_env env, napi_callback_info info) {
  ARGS(6);
  STR_ARG(path, 0, PATH_BUF);
  INT_ARG(asec, 1);
  INT_ARG(ansec, 2);
  INT_ARG(msec, 3);
  INT_ARG(mnsec, 4);
  INT_ARG(flags, 5);
  struct timespec ts[2] = {{(time_t)asec, (long)ansec}, {(time_t)msec, (long)mnsec}};
  if (utimensat(AT_FDCWD, path, ts, (int)flags) != 0)
    return throw_errno(env, errno, "utimensat", path);
  return undefined(env);
}

// Gets the data of a typed array argument of the given type and at least n elements.
static void *typed_arg(napi_env env, napi_value v, napi_typedarray_type want, size_t n) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  return type == want && length >= n ? data : NULL;
}

// lstat(2) of path into nums (Float64Array: mode, nlink, uid, gid, rdev, size,
// blocks, blksize) and bigs (BigInt64Array: dev, ino, atime, mtime, ctime,
// times in nanoseconds). Returns 0, or -errno: every lookup of a name the
// upper layer lacks is an ENOENT, and Node's lstatSync either throws for it
// or, with throwIfNoEntry, still builds a BigIntStats of eighteen bigints
// for every hit; this is what the overlay's lookups call.
static napi_value js_lstat_into(napi_env env, napi_callback_info info) {
  ARGS(3);
  STR_ARG(path, 0, PATH_BUF);
  double *nums = typed_arg(env, argv[1], napi_float64_array, 8);
  int64_t *bigs = typed_arg(env, argv[2], napi_bigint64_array, 5);
  if (nums == NULL || bigs == NULL) return throw_type(env, "arguments 1 and 2 must be a Float64Array(8) and a BigInt64Array(5)");
  struct stat st;
  int r = 0;
  if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    r = -errno;
  } else {
    nums[0] = st.st_mode;
    nums[1] = st.st_nlink;
    nums[2] = st.st_uid;
    nums[3] = st.st_gid;
    nums[4] = st.st_rdev;
    nums[5] = st.st_size;
    nums[6] = st.st_blocks;
    nums[7] = st.st_blksize;
    bigs[0] = (int64_t)st.st_dev;
    bigs[1] = (int64_t)st.st_ino;
    bigs[2] = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
    bigs[3] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    bigs[4] = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  }
  napi_value v;
  napi_create_int32(env, r, &v);
  return v;
}

// FUSE passthrough (include/uapi/linux/fuse.h, 7.40): Debian 12's headers
// predate it, so the two ioctls are spelled out.
struct fuse_backing_map_ {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define FUSE_DEV_IOC_MAGIC_ 229
#define FUSE_DEV_IOC_BACKING_OPEN_ _IOW(FUSE_DEV_IOC_MAGIC_, 1, struct fuse_backing_map_)
#define FUSE_DEV_IOC_BACKING_CLOSE_ _IOW(FUSE_DEV_IOC_MAGIC_, 2, uint32_t)

// Registers fd as a backing file of the FUSE connection on devfd: the id an
// OPEN reply names with FOPEN_PASSTHROUGH, or -errno (EPERM without
// CAP_SYS_ADMIN in the initial namespace, ELOOP when fd's filesystem is
// stacked too deep, ENOTTY on kernels without passthrough).
static napi_value js_fuse_backing_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  INT_ARG(dev, 0);
  INT_ARG(fd, 1);
  struct fuse_backing_map_ map = {(int32_t)fd, 0, 0};
  int id = ioctl((int)dev, FUSE_DEV_IOC_BACKING_OPEN_, &map);
  napi_value v;
  napi_create_int32(env, id >= 0 ? id : -errno, &v);
  return v;
}

static napi_value js_fuse_backing_close(napi_env env, napi_callback_info info) {
  ARGS(2);
  INT_ARG(dev, 0);
  INT_ARG(id, 1);
  uint32_t backing = (uint32_t)id;
  int r = ioctl((int)dev, FUSE_DEV_IOC_BACKING_CLOSE_, &backing);
  napi_value v;
  napi_create_int32(env, r == 0 ? 0 : -errno, &v);
  return v;
}

static napi_value js_lseek(napi_env env, napi_callback_info info) {
  ARGS(3);
  INT_ARG(fd, 0);
  INT_ARG(offset, 1);
  INT_ARG(whence, 2);
  off_t r = lseek((int)fd, (off_t)offset, (int)whence);
  if (r < 0) return throw_errno(env, errno, "lseek", NULL);
  napi_value v;
  napi_create_int64(env, (int64_t)r, &v);
  return v;
}

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  ARGS(4);
  INT_ARG(fd, 0);
  INT_ARG(mode, 1);
  INT_ARG(offset, 2);
  INT_ARG(length, 3);
  if (fallocate((int)fd, (int)mode, (off_t)offset, (off_t)length) != 0)
    return throw_errno(env, errno, "fallocate", NULL);
  return undefined(env);
}

// A uv_poll_t on an fd Node has no handle type for. The callback runs on the
// main thread through napi_make_callback, so promise jobs queued by it run
// when it returns, as for any Node I/O callback. Level-triggered: if the
// callback leaves data unread it is called again on the next loop turn.
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int stopped;
} poller_t;

static void poller_closed(uv_handle_t *h) { free(h->data); }

static void poller_event(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->stopped) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_global(env, &recv); // make_callback wants an object as `this`
  // status < 0 is a libuv error (e.g. the fd was closed); POLLERR/POLLHUP
  // surface as readability, and the read itself then reports them.
  napi_create_int32(env, status, &arg);
  if (napi_make_callback(env, p->context, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    // A throw in the callback is an uncaught exception, as in any Node callback.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value js_poll_readable(napi_env env, napi_callback_info info) {
  ARGS(2);
  INT_ARG(fd, 0);
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "argument 1 must be a function");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, EINVAL, "uv_poll_init", NULL);
  poller_t *p = calloc(1, sizeof *p);
  if (p == NULL) return throw_errno(env, ENOMEM, "uv_poll_init", NULL);
  int r = uv_poll_init(loop, &p->poll, (int)fd);
  if (r != 0) {
    free(p);
    return throw_errno(env, -r, "uv_poll_init", NULL);
  }
  p->poll.data = p;
  p->env = env;
  napi_create_reference(env, argv[1], 1, &p->callback);
  napi_value name;
  napi_create_string_utf8(env, "layerfs.pollReadable", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->context);
  r = uv_poll_start(&p->poll, UV_READABLE, poller_event);
  if (r != 0) {
    napi_delete_reference(env, p->callback);
    napi_async_destroy(env, p->context);
    uv_close((uv_handle_t *)&p->poll, poller_closed);
    return throw_errno(env, -r, "uv_poll_start", NULL);
  }
  napi_value handle;
  napi_create_external(env, p, NULL, NULL, &handle);
  return handle;
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  poller_t *p;
  if (napi_get_value_external(env, argv[0], (void **)&p) != napi_ok) return throw_type(env, "argument 0 must be a poll handle");
  if (p->stopped) return undefined(env);
  p->stopped = 1;
  uv_poll_stop(&p->poll);
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->context);
  uv_close((uv_handle_t *)&p->poll, poller_closed);
  return undefined(env);
}

// Busy-polls a non-blocking fd for up to usec microseconds: returns the
// bytes read, or -errno (-EAGAIN when nothing came). Returning instead of
// throwing matters: an empty poll is the normal case, and a thrown error
// costs more than the read. Used right after a reply, when the next request
// of a synchronous client is microseconds away: catching it while still
// running spares both sides a sleep and a wake-up (on a virtual machine an
// inter-processor interrupt each).
static napi_value js_read_spin(napi_env env, napi_callback_info info) {
  ARGS(3);
  INT_ARG(fd, 0);
  INT_ARG(usec, 2);
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) return throw_type(env, "argument 1 must be a Buffer");
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  ssize_t n;
  int err = 0;
  for (;;) {
    n = read((int)fd, data, len);
    err = n < 0 ? errno : 0; // kept before any other call can change errno
    if (n >= 0 || (err != EAGAIN && err != EINTR)) break;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t spent = (now.tv_sec - start.tv_sec) * 1000000 + (now.tv_nsec - start.tv_nsec) / 1000;
    if (spent >= usec) break;
  }
  napi_value v;
  napi_create_int64(env, n >= 0 ? (int64_t)n : -(int64_t)err, &v);
  return v;
}

static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return throw_errno(env, errno, "socketpair", NULL);
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  for (uint32_t i = 0; i < 2; i++) {
    napi_create_int32(env, sv[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

// Blocks until one message arrives. fusermount3 sends a single byte with the
// fd as ancillary data; a message without one (or EOF, when the sender died
// or refused) gives -1, and the caller reports the sender's own error.
static napi_value js_recv_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  INT_ARG(sock, 0);
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do n = recvmsg((int)sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "recvmsg", NULL);
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

static napi_value js_set_nonblock(napi_env env, napi_callback_info info) {
  ARGS(1);
  INT_ARG(fd, 0);
  int fl = fcntl((int)fd, F_GETFL);
  if (fl < 0 || fcntl((int)fd, F_SETFL, fl | O_NONBLOCK) != 0) return throw_errno(env, errno, "fcntl", NULL);
  return undefined(env);
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static void export_int(napi_env env, napi_value exports, const char *name, int64_t value) {
  napi_value v;
  napi_create_int64(env, value, &v);
  napi_set_named_property(env, exports, name, v);
}

static napi_value init(napi_env env, napi_value exports) {
  export_fn(env, exports, "mknod", js_mknod);
  export_fn(env, exports, "lgetxattr", js_lgetxattr);
  export_fn(env, exports, "lgetxattrIfSet", js_lgetxattr_if_set);
  export_fn(env, exports, "lgetxattrOrErrno", js_lgetxattr_or_errno);
  export_fn(env, exports, "lsetxattr", js_lsetxattr);
  export_fn(env, exports, "llistxattr", js_llistxattr);
  export_fn(env, exports, "lremovexattr", js_lremovexattr);
  export_fn(env, exports, "renameat2", js_renameat2);
  export_fn(env, exports, "umount2", js_umount2);
  export_fn(env, exports, "mount", js_mount);
  export_fn(env, exports, "utimensat", js_utimensat);
  export_fn(env, exports, "lstatInto", js_lstat_into);
  export_fn(env, exports, "lseek", js_lseek);
  export_fn(env, exports, "fuseBackingOpen", js_fuse_backing_open);
  export_fn(env, exports, "fuseBackingClose", js_fuse_backing_close);
  export_fn(env, exports, "fallocate", js_fallocate);
  export_fn(env, exports, "pollReadable", js_poll_readable);
  export_fn(env, exports, "pollStop", js_poll_stop);
  export_fn(env, exports, "readSpin", js_read_spin);
  export_fn(env, exports, "socketpair", js_socketpair);
  export_fn(env, exports, "recvFd", js_recv_fd);
  export_fn(env, exports, "setNonblock", js_set_nonblock);
  export_int(env, exports, "RENAME_NOREPLACE", RENAME_NOREPLACE);
  export_int(env, exports, "RENAME_EXCHANGE", RENAME_EXCHANGE);
  export_int(env, exports, "RENAME_WHITEOUT", RENAME_WHITEOUT);
  export_int(env, exports, "XATTR_CREATE", XATTR_CREATE);
  export_int(env, exports, "XATTR_REPLACE", XATTR_REPLACE);
  export_int(env, exports, "MNT_FORCE", MNT_FORCE);
  export_int(env, exports, "MNT_DETACH", MNT_DETACH);
  export_int(env, exports, "UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW);
  export_int(env, exports, "MS_RDONLY", MS_RDONLY);
  export_int(env, exports, "MS_NOSUID", MS_NOSUID);
  export_int(env, exports, "MS_NODEV", MS_NODEV);
  export_int(env, exports, "MS_NOEXEC", MS_NOEXEC);
  export_int(env, exports, "MS_SYNCHRONOUS", MS_SYNCHRONOUS);
  export_int(env, exports, "MS_DIRSYNC", MS_DIRSYNC);
  export_int(env, exports, "MS_NOATIME", MS_NOATIME);
  export_int(env, exports, "MS_NODIRATIME", MS_NODIRATIME);
  export_int(env, exports, "MS_RELATIME", MS_RELATIME);
  export_int(env, exports, "MS_STRICTATIME", MS_STRICTATIME);
  export_int(env, exports, "MS_LAZYTIME", MS_LAZYTIME);
  export_int(env, exports, "UTIME_NOW", UTIME_NOW);
  export_int(env, exports, "UTIME_OMIT", UTIME_OMIT);
  export_int(env, exports, "AT_SYMLINK_NOFOLLOW", AT_SYMLINK_NOFOLLOW);
  export_int(env, exports, "SEEK_DATA", SEEK_DATA);
  export_int(env, exports, "SEEK_HOLE", SEEK_HOLE);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
