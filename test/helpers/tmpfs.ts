/** A small tmpfs, to fill a file system for real (needs root: callers skip otherwise). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { tempDir } from './server.js';

/** A tmpfs of `kib` KiB (and at most `inodes` inodes, if given) on a fresh folder; unmount with the returned function. */
export function mountTmpfs(kib: number, inodes?: number): { dir: string; unmount(): void } {
  const dir = tempDir('keyhold-audit-fs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0700${inodes === undefined ? '' : `,nr_inodes=${inodes}`}`, 'tmpfs', dir]);
  return {
    dir,
    unmount() {
      execFileSync('umount', [dir]);
      fs.rmdirSync(dir);
    },
  };
}
