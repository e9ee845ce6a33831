/**
 * `keyhold approval …`: quorum approval from an operator's shell. An approver is shown what they
 * approve, and the hash they state is computed here, from what the server shows, not taken from
 * the server's word: a server (or a path to it) that showed one thing and hashed another is caught
 * before the approval is sent. Second-factor codes come from KEYHOLD_TOTP_CODE or stdin, never argv.
 */
import { readFileSync } from 'node:fs';
import { paramsSha256 } from '../../approvals/params-hash.js';
import { KeyholdClient } from '../../client/client.js';
import type { ApprovalPolicyBody, ApprovalView } from '../../wire/approvals.js';
import { printJson } from '../output.js';
import { readSecret } from '../prompt.js';

const client = () => KeyholdClient.fromEnv();

const failure = (code: string, message: string) => Object.assign(new Error(message), { code });

/** The hash of what the server shows, computed here. */
function shownHash(view: ApprovalView): string {
  return paramsSha256({ operation: view.operation, method: view.method, url: view.url, body: view.body });
}

/** A second-factor code from KEYHOLD_TOTP_CODE, else one line of stdin (prompted for on a terminal). */
const readCode = async (): Promise<string> => (await readSecret('TOTP code (or an unused recovery code): ', { env: 'KEYHOLD_TOTP_CODE' })).trim();

/** Shows the request (on stderr, so stdout stays the JSON answer) and checks the server's hash against what it shows. */
async function inspect(id: string, expected?: string): Promise<{ view: ApprovalView; hash: string }> {
  const view = await client().getApproval(id);
  const hash = shownHash(view);
  process.stderr.write(`${view.id}: ${view.operation} ${view.method} ${view.url}\n  requested by ${view.requester}, ${view.state}, expires ${view.expires_at}\n  body: ${JSON.stringify(view.body)}\n  params_sha256: ${hash}\n`);
  if (hash !== view.params_sha256) throw failure('ERR_APPROVAL_PARAMS_MISMATCH', `the server says params_sha256 ${view.params_sha256}, but what it shows hashes to ${hash}: not approving`);
  if (expected !== undefined && expected !== hash) throw failure('ERR_APPROVAL_PARAMS_MISMATCH', `the request's params_sha256 is ${hash}, not ${expected}: not approving`);
  return { view, hash };
}

export const approvalCommands = {
  async list(o: { state?: string; limit?: string }) { printJson(await client().listApprovals(o.state, o.limit)); },
  async sweep() { printJson(await client().sweepApprovals()); },
  async show(id: string) {
    const view = await client().getApproval(id);
    printJson({ ...view, params_sha256_verified: shownHash(view) === view.params_sha256 });
  },
  async approve(id: string, o: { paramsSha256?: string }) {
    const { hash } = await inspect(id, o.paramsSha256);
    printJson(await client().approveRequest(id, hash, await readCode()));
  },
  async deny(id: string, o: { reason?: string }) {
    await inspect(id);
    printJson(await client().denyRequest(id, await readCode(), o.reason));
  },
  async cancel(id: string) { printJson(await client().cancelApproval(id)); },
  async execute(id: string) { printJson(await client().executeApproval(id) ?? { executed: id }); },
  async policyPut(name: string, file: string) {
    const { parse } = await import('yaml');
    const doc = parse(readFileSync(file === '-' ? 0 : file, 'utf8')) as ApprovalPolicyBody;
    printJson(await client().putApprovalPolicy(name, doc));
  },
  async policyShow(name: string) { printJson(await client().getApprovalPolicy(name)); },
  async policyList() { printJson(await client().listApprovalPolicies()); },
  async policyDelete(name: string) { printJson((await client().deleteApprovalPolicy(name)) ?? { deleted: name }); },
};
