import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/**
 * Private copies of a PKCS#11 module file, one per member that shares its module path with
 * another member. A path dlopen()ed twice is one library with one C_Initialize, and modules such
 * as p11-kit-client.so read their endpoint (P11_KIT_SERVER_ADDRESS) at C_Initialize: two members
 * on one path would both reach the first one's endpoint. The copies live in a fresh 0700 folder
 * (under `dir`, default the OS temp dir; it must not be mounted noexec), removed at close.
 */
export class ModuleCopies {
  private folder: string | undefined;
  private count = 0;

  constructor(private readonly dir: string = tmpdir()) {}

  copy(module: string, member: string): string {
    if (!this.folder) {
      mkdirSync(this.dir, { recursive: true });
      this.folder = mkdtempSync(join(this.dir, 'keyhold-pkcs11-'));
      chmodSync(this.folder, 0o700);
    }
    const target = join(this.folder, `${++this.count}-${member.replace(/[^A-Za-z0-9_.-]/g, '_')}-${basename(module)}`);
    copyFileSync(module, target);
    chmodSync(target, 0o500);
    return target;
  }

  remove(copy: string): void {
    rmSync(copy, { force: true });
  }

  close(): void {
    if (this.folder) rmSync(this.folder, { recursive: true, force: true });
    this.folder = undefined;
  }
}
