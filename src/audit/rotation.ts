/**
 * Size-based rotation: the full active file (its last entry is the checkpoint that asked for the
 * rotation) is renamed to `<path>.<first seq>` (files.ts) and a new one is created; the chain goes
 * on in it. It runs inside the flush loop, at a batch boundary, so appends queue meanwhile.
 */
import { rename } from 'node:fs/promises';
import type { GroupCommitWriter } from './group-commit.js';
import { auditIo, openForAppend, type WrapIo } from './file-io.js';
import { rotatedName } from './files.js';

/**
 * A failure is not terminal: a failed rename leaves the path naming the active file, and after a
 * rename the next file may be impossible to create for now (no inode or no room for the directory
 * entry on a full disk). Recovery then creates it (see recovery.ts). `ended` runs either way.
 */
export async function rotateActiveFile(writer: GroupCommitWriter, wrapIo: WrapIo | undefined, ended: () => void): Promise<void> {
  writer.rotating = true;
  const target = rotatedName(writer.path, writer.file.firstSeq);
  try {
    await rename(writer.path, target);
    writer.rotatedFiles += 1;
    writer.needsNextFile = true;
    await openNextFile(writer, wrapIo);
  } catch (err) {
    writer.fail(err, [], 'ROTATION_FAILED');
  } finally {
    writer.rotating = false;
    ended();
  }
}

/** Creates the active file after a rename (O_EXCL: the path was just renamed away) and switches to it. */
export async function openNextFile(writer: GroupCommitWriter, wrapIo: WrapIo | undefined): Promise<void> {
  const handle = await openForAppend(writer.path, true); // also syncs the directory (the rename with it)
  let stat;
  try {
    stat = await handle.stat();
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  const old = writer.switchFile(auditIo(handle, wrapIo), { dev: stat.dev, ino: stat.ino });
  await old.close().catch(() => undefined);
}
