import { writeBackup } from '../../backup/write.js';
import { restoreBackup } from '../../backup/restore.js';
import { terminalProgress } from '../../backup/progress.js';
import { openConfiguredStore } from '../../backup/store.js';
import { loadConfigFile } from '../../core/config.js';
import { openHsm } from '../../hsm/open.js';
import { printJson } from '../output.js';

/** `keyhold backup`: the store is opened directly and read in one snapshot; a running server goes on writing. */
export async function runBackup(options: { config: string; out: string }): Promise<void> {
  const config = loadConfigFile(options.config);
  const store = await openConfiguredStore(config.storage, 'backup');
  try {
    const manifest = await writeBackup(store, options.out, terminalProgress('backup'));
    printJson({ file: options.out, ...manifest });
  } finally {
    await store.close();
  }
}

/**
 * `keyhold restore`: into an empty store, with the HSM that sealed the backup. The HSM is opened
 * first (PIN checked) so a wrong PIN or module fails before the target store is even created.
 */
export async function runRestore(options: { config: string; in: string }): Promise<void> {
  const config = loadConfigFile(options.config);
  const hsm = await openHsm(config.hsm, { warn: (m) => process.stderr.write(`keyhold: warning: ${m}\n`) });
  try {
    const result = await restoreBackup(options.in, () => openConfiguredStore(config.storage, 'restore'), hsm, terminalProgress('restore'));
    printJson({ restored: result.records, from: options.in, createdAt: result.manifest.createdAt, sha256: result.manifest.sha256 });
    process.stderr.write('keyhold: restored and unsealed with the configured HSM. The audit log is not part of a backup: start the server with --new-audit-chain unless you restored its audit log files too\n');
  } finally {
    await hsm.close();
  }
}
