/**
 * `keyhold audit …`. verify is offline: it reads the files and needs only the public key (and,
 * to detect a cut tail, the latest checkpoint), so it works with the server stopped or compromised.
 */
import { existsSync, readFileSync } from 'node:fs';
import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';

function usage(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_BAD_REQUEST' });
}

export async function auditVerify(o: { file?: string; config?: string; publicKey?: string; checkpoint?: string }): Promise<void> {
  let path = o.file;
  let postgres;
  if (!path && o.config) {
    const { loadConfigFile } = await import('../../core/config.js');
    const config = loadConfigFile(o.config);
    path = config.audit.path;
    // On PostgreSQL the log is the database's audit table.
    postgres = config.storage.postgres;
  }
  if (!path && !postgres) throw usage('give --file AUDIT_LOG or --config FILE');
  if (!o.publicKey) throw usage('give --public-key PEM_FILE (from "keyhold audit public-key"): checkpoints cannot be checked without it');
  const { publicKeyFromPem, importCheckpoint, checkpointSignatureValid, keyFingerprint } = await import('../../audit/checkpoint.js');
  let publicKey;
  try {
    publicKey = publicKeyFromPem(readFileSync(o.publicKey, 'utf8'));
  } catch (err) {
    throw usage(`--public-key ${o.publicKey}: ${(err as Error).message}`);
  }
  let anchor;
  if (o.checkpoint) {
    try {
      anchor = importCheckpoint(JSON.parse(readFileSync(o.checkpoint, 'utf8')));
    } catch (err) {
      throw usage(`--checkpoint ${o.checkpoint}: ${(err as Error).message}`);
    }
    // The checkpoint file is only evidence if the HSM key signed it.
    const fingerprint = keyFingerprint(publicKey);
    if (anchor.key !== fingerprint) throw Object.assign(new Error(`--checkpoint was signed by another key (fingerprint ${anchor.key}, expected ${fingerprint})`), { code: 'ERR_SIGNATURE_INVALID' });
    if (!checkpointSignatureValid(anchor, publicKey)) throw Object.assign(new Error('--checkpoint has an invalid signature'), { code: 'ERR_SIGNATURE_INVALID' });
  }
  if (postgres) return verifyTable(postgres, publicKey, anchor);
  if (!path) throw usage('give --file AUDIT_LOG or --config FILE');
  const { auditFileSet, scanAuditFiles } = await import('../../audit/verify.js');
  const files = auditFileSet(path);
  if (files.length === 0 && !anchor) throw Object.assign(new Error(`no audit file at ${path} (nor rotated ones)`), { code: 'ERR_NOT_FOUND' });
  if (!existsSync(path) && files.length > 0) process.stderr.write(`keyhold: warning: the active file ${path} is missing; checking its rotated siblings only\n`);
  const { result } = await scanAuditFiles(files, { publicKey, ...(anchor ? { anchor } : {}) });
  printJson(result);
  if (!result.ok) {
    process.stderr.write(`keyhold: audit log ${result.truncated ? 'truncated' : 'bad'}${result.file ? ` in ${result.file}` : ''} at line ${result.line} (seq ${result.badSeq}): ${result.reason}\n`);
    process.exitCode = 3;
  } else {
    // What no signature covers, said plainly: entries after the last signed head (a crash leaves
    // some) can be rewritten or cut by whoever can write the file, and verify cannot tell.
    // (The last checkpoint entry itself is among unsignedEntries, but its signature vouches for it.)
    const unsigned = result.lastCheckpoint ? (result.unsignedEntries ?? 0) - 1 : 0;
    if (unsigned > 0 && result.lastCheckpoint) {
      process.stderr.write(`keyhold: note: ${unsigned} entries after seq ${result.lastCheckpoint.headSeq} (the head the last checkpoint signs) are chained but not signed: a rewrite of them cannot be detected\n`);
    }
    if (!anchor) process.stderr.write('keyhold: note: without --checkpoint a log cut or rewritten after its last checkpoint cannot be detected\n');
  }
}

/** Every chain in the audit table of the config's database (one per server process that wrote). */
async function verifyTable(config: import('../../storage/postgres-config.js').PostgresConfig, publicKey: import('node:crypto').KeyObject, anchor: import('../../audit/checkpoint.js').StoredCheckpoint | undefined): Promise<void> {
  const { postgresOptions } = await import('../../storage/postgres-config.js');
  const { verifyAuditTable } = await import('../../audit/pg-verify.js');
  const { default: pg } = await import('pg');
  const options = postgresOptions(config);
  const client = new pg.Client({ host: options.host, port: options.port, user: options.user, database: options.database, password: options.password, ssl: options.ssl ?? false, application_name: 'keyhold audit verify' });
  await client.connect();
  let result;
  try {
    result = await verifyAuditTable(client, publicKey, anchor);
  } finally {
    await client.end();
  }
  printJson(result);
  if (result.missingChain) process.stderr.write(`keyhold: the checkpoint's chain ${result.missingChain} is not in the audit table (removed?)\n`);
  for (const c of result.chains) {
    if (!c.ok) process.stderr.write(`keyhold: audit chain ${c.chain} ${c.truncated ? 'truncated' : 'bad'} at seq ${c.badSeq}: ${c.reason}\n`);
  }
  if (!result.ok) process.exitCode = 3;
  else if (!anchor) process.stderr.write('keyhold: note: without --checkpoint a chain cut or rewritten after its last checkpoint cannot be detected, nor a whole chain removed\n');
}

export async function auditPublicKey(): Promise<void> {
  const r = await KeyholdClient.fromEnv().request<{ public_key_pem: string }>('GET', '/v1/sys/audit/public-key');
  process.stdout.write(r.public_key_pem.endsWith('\n') ? r.public_key_pem : `${r.public_key_pem}\n`);
}

export async function auditCheckpoint(): Promise<void> {
  printJson(await KeyholdClient.fromEnv().request<unknown>('GET', '/v1/sys/audit/checkpoint'));
}
