import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { readPin, type SoftHsmTestToken } from '../../helpers/softhsm.js';

// The domain tests say code('ERR_…'): the one matcher, under a short name.
export { keyholdCode as code } from '../../helpers/errors.js';

/**
 * Labels of every token object visible to a separate process (opensc pkcs11-tool, logged in):
 * an independent view of what the adapter left on the token.
 */
export function tokenObjectLabels(token: SoftHsmTestToken): string[] {
  const result = spawnSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', readPin(token), '--list-objects'], {
    env: { ...process.env, SOFTHSM2_CONF: token.confPath },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  assert.equal(result.status, 0, result.stderr);
  const labels: string[] = [];
  for (const line of result.stdout.split('\n')) {
    const match = /^\s+label:\s*(.*)$/.exec(line);
    if (match?.[1] !== undefined) labels.push(match[1].trim());
  }
  return labels;
}
