/**
 * The file as a second sink beside the PostgreSQL audit table: each process's chain, copied line
 * for line into a file of its own (`<dir>/audit-<chain>.log`) once its entries have committed in
 * the table. The lines are the table's exact canonical lines, so `keyhold audit verify --file`
 * checks the copy offline with the public key alone, as it does a SQLite server's log.
 *
 * The table stays the log of record: a write is acknowledged when its entries commit there. The
 * copy follows each commit (one write and fdatasync per committed batch); a crash between the
 * commit and the copy leaves the file one batch short, which verify reports as a cut tail against a
 * later checkpoint. A copy that cannot be written is given up with an error on stderr, not made a
 * reason to refuse requests: the table still holds every entry.
 */
import fs from 'node:fs';
import path from 'node:path';

export class AuditFileMirror {
  readonly file: string;
  #fd: number | undefined;
  #failed: string | undefined;

  private constructor(file: string, fd: number, private readonly error: (message: string) => void) {
    this.file = file;
    this.#fd = fd;
  }

  /** Creates the chain's file (it must not exist: a chain is written once), 0600, in a 0700 directory. */
  static open(dir: string, chain: string, error: (message: string) => void): AuditFileMirror {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `audit-${chain}.log`);
    const fd = fs.openSync(file, 'wx', 0o600);
    // The new name must survive a crash too.
    const dirFd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
    return new AuditFileMirror(file, fd, error);
  }

  /** Why the copy stopped, if it did. */
  get failed(): string | undefined {
    return this.#failed;
  }

  /** Appends lines that have committed in the table, in chain order, durably. */
  append(lines: readonly string[]): void {
    const fd = this.#fd;
    if (fd === undefined || lines.length === 0) return;
    try {
      const bytes = Buffer.from(lines.join('\n') + '\n', 'utf8');
      let offset = 0;
      while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset);
      fs.fdatasyncSync(fd);
    } catch (err) {
      this.#failed = (err as NodeJS.ErrnoException).code ?? 'WRITE_FAILED';
      this.error(`audit file copy ${this.file} stopped (${this.#failed}): ${(err as Error).message}; the PostgreSQL audit table still holds every entry`);
      this.close();
    }
  }

  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    fs.closeSync(fd);
  }
}
