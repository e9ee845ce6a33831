/**
 * The audit log's file primitives: the AuditIo seam (tests wrap it to inject I/O failures) and how
 * an audit file is opened (never through a symbolic link; a new file's directory entry synced).
 */
import { constants, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The operations the log needs from its file; tests wrap them to inject I/O failures. */
export interface AuditIo {
  write(data: Buffer): Promise<void>;
  datasync(): Promise<void>;
  /** Cuts the file to `length` bytes; returns how many bytes were removed. */
  truncate(length: number): Promise<number>;
  close(): Promise<void>;
}

export type WrapIo = (io: AuditIo) => AuditIo;

export function fileIo(handle: FileHandle): AuditIo {
  return {
    async write(data) {
      // Synchronous on purpose: a page-cache write of one batch takes microseconds, less than the
      // hop to libuv's pool and back. Only the fdatasync, which waits for the disk, goes there.
      // O_APPEND: each write lands at the end; loop because writes may be partial.
      for (let offset = 0; offset < data.length; ) {
        const bytesWritten = writeSync(handle.fd, data, offset, data.length - offset, null);
        if (bytesWritten <= 0) throw new Error('write made no progress');
        offset += bytesWritten;
      }
    },
    datasync: () => handle.datasync(),
    async truncate(length) {
      const { size } = await handle.stat();
      await handle.truncate(length);
      return size - length;
    },
    close: () => handle.close(),
  };
}

/** The io the log writes through: the file's, wrapped when a test asks. */
export function auditIo(handle: FileHandle, wrapIo: WrapIo | undefined): AuditIo {
  return wrapIo ? wrapIo(fileIo(handle)) : fileIo(handle);
}

async function syncDir(path: string): Promise<void> {
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Opens (creating with mode 0600 and syncing the directory entry) the file for appending. Never
 * through a symbolic link (O_NOFOLLOW): whoever can write the log directory could otherwise point
 * the log at any file this process may write. `mustCreate` (rotation): the path was just renamed
 * away, so a file found there was put there by someone else.
 */
export async function openForAppend(path: string, mustCreate = false): Promise<FileHandle> {
  const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW;
  let created: FileHandle;
  try {
    created = await open(path, flags | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || mustCreate) throw err;
    return open(path, flags);
  }
  // A new file's directory entry must be durable too, or a crash could lose the whole log.
  try {
    await syncDir(path);
  } catch (err) {
    await created.close();
    throw err;
  }
  return created;
}
