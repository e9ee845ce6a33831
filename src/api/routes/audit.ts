import { exportCheckpoint, type ExportedCheckpoint } from '../../audit/checkpoint.js';
import type { FileAuditLog } from '../../audit/file-log.js';
import type { AuditSigner } from '../../audit/signer.js';
import { KeyholdError } from '../../errors.js';
import { AuditCheckpoint, AuditPublicKey } from '../../wire/audit.js';
import { route, type ApiPlugin } from '../route.js';
import type { SameType } from '../same-type.js';
import { withErrors } from '../schemas.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';

export interface AuditApiOptions {
  audit: Pick<FileAuditLog, 'status' | 'lastCheckpoint'>;
  /** The checkpoint signing key (public half only in this process). */
  signer: Pick<AuditSigner, 'fingerprint' | 'publicKeyPem'>;
}

// The audit module declares the exported checkpoint (it also parses `--checkpoint` files); it must be the wire schema's type.
const _checkpoint: SameType<ExportedCheckpoint, AuditCheckpoint> = true;

/** What `keyhold audit verify` needs from a running server: the public key, and the latest checkpoint. */
export const auditApi: ApiPlugin<AuditApiOptions> = async (app, { audit, signer }) => {
  route(app, {
    method: 'GET', url: '/v1/sys/audit/public-key',
    // A public key: anyone may check the log with it.
    public: true,
    schema: { tags: ['sys'], summary: 'The audit checkpoint public key (PEM, SPKI) and its sha256 fingerprint', response: { 200: AuditPublicKey } },
    handler: async () => {
      const chain = audit.status.chain;
      return { public_key_pem: signer.publicKeyPem, fingerprint: signer.fingerprint, ...(chain ? { chain } : {}) };
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/audit/checkpoint', operation: 'audit.checkpoint',
    schema: { tags: ['sys'], summary: 'The latest audit checkpoint (for keyhold audit verify --checkpoint)', response: withErrors({ 200: AuditCheckpoint }) },
    authorize: () => [[policyPath(MOUNTS.audit), 'read']],
    handler: async () => {
      const checkpoint = audit.lastCheckpoint;
      if (!checkpoint) throw new KeyholdError('ERR_NOT_FOUND', 'no audit checkpoint yet');
      return exportCheckpoint(checkpoint);
    },
  });
};
