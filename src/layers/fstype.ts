// Which filesystems a layer may live on without risk of an indefinite stall.
// A layer on a local disk or memory filesystem is read with synchronous
// system calls (no threadpool round trip: a cold walk of the bench store took
// half the time); a layer on anything else (NFS, SMB, Ceph, 9p, FUSE, ...)
// with asynchronous ones, so that a hung server delays only the requests
// that touch it and the daemon keeps answering the rest.

/** statfs f_type of filesystems that answer from local storage or memory. */
const LOCAL: Record<number, string> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x858458f6: 'ramfs',
  0xf2f52010: 'f2fs',
  0x2fc12fc1: 'zfs',
  0xca451a4e: 'bcachefs',
  0x794c7630: 'overlay',
  0x73717368: 'squashfs',
  0xe0f5e1e2: 'erofs',
  0x3153464a: 'jfs',
  0x52654973: 'reiserfs',
  0x4d44: 'vfat',
  0x2011bab0: 'exfat',
  0x28cd3d45: 'cramfs',
};

/** The filesystem's name when it is local (never stalls indefinitely), else undefined. */
export function localFilesystem(fType: number | bigint): string | undefined {
  return LOCAL[Number(fType)];
}
