import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh directory named `prefix` + random under KEYHOLD_TEST_TMP (made by the test scripts and
 * removed after the run) or else the OS temp dir.
 */
export function tempDir(prefix = 'keyhold-'): string {
  return mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), prefix));
}
