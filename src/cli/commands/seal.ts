import { readFileSync } from 'node:fs';
import { checkRecoveryParameters, type ShareInput } from '../../barrier/recovery.js';
import { loadConfigFile } from '../../core/config.js';
import type { RecoveryShareSet } from '../../core/recovery-init.js';
import { migrateSeal } from '../../core/seal-migrate.js';
import { KeyholdError } from '../../errors.js';
import { wholeNumber } from '../flags.js';
import { printJson } from '../output.js';

const warn = (m: string) => process.stderr.write(`keyhold: warning: ${m}\n`);

/** `--recovery-shares N --recovery-threshold M`: both or neither, checked before anything is opened. */
export function recoveryFlags(o: { recoveryShares?: string; recoveryThreshold?: string }): { shares: number; threshold: number } | undefined {
  if (o.recoveryShares === undefined && o.recoveryThreshold === undefined) return undefined;
  if (o.recoveryShares === undefined || o.recoveryThreshold === undefined) throw new KeyholdError('ERR_CONFIG', '--recovery-shares and --recovery-threshold go together');
  const shares = wholeNumber('--recovery-shares', o.recoveryShares);
  const threshold = wholeNumber('--recovery-threshold', o.recoveryThreshold);
  checkRecoveryParameters(shares, threshold);
  return { shares, threshold };
}

/**
 * The shares, printed once on stdout (JSON) and nowhere else: not to a file, not to the log. The
 * operator hands one to each custodian (e.g. `jq -r '.recoveryShares.shares[0].share'`).
 */
export function printRecoveryShares(set: RecoveryShareSet): void {
  printJson({
    recoveryShares: {
      set: set.setId,
      threshold: set.threshold,
      shares: set.list.map((share, i) => ({ index: i + 1, share })),
    },
  });
  process.stderr.write(`keyhold: ${set.shares} recovery shares printed above, ONCE: give one to each custodian now; any ${set.threshold} of them move the seal to a new HSM (keyhold seal migrate). keyhold keeps none of them.\n`);
}

/** Shares from files (one share per file, or one per line), or from stdin when no file is named. */
function readShares(files: string[]): ShareInput[] {
  if (files.length === 0 && process.stdin.isTTY) process.stderr.write('keyhold: paste the recovery shares, one per line, then Ctrl-D (keyhold stores none of them)\n');
  const sources = files.length > 0 ? files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') })) : [{ name: 'stdin', text: readFileSync(0, 'utf8') }];
  const shares: ShareInput[] = [];
  for (const { name, text } of sources) {
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
    lines.forEach((line, i) => shares.push({ text: line, source: lines.length > 1 || name === 'stdin' ? `${name} line ${i + 1}` : name }));
  }
  return shares;
}

export async function runSealMigrate(o: { config: string; shareFile: string[] }): Promise<void> {
  const config = loadConfigFile(o.config);
  const result = await migrateSeal(config, readShares(o.shareFile), warn);
  printJson({ migrated: true, ...result });
  if (result.lostKeys.length > 0) {
    warn(`${result.lostKeys.length} key(s) could not be recovered (their material was inside the lost token): ${result.lostKeys.map((k) => k.name).join(', ')}; they will fail with ERR_HSM_KEY_MISSING`);
  }
  process.stderr.write('keyhold: seal migrated; start the server with the new config (the migration is recorded as the first entry of a new audit chain)\n');
}
