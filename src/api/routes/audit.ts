import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { exportCheckpoint } from '../../audit/checkpoint.js';
import type { Runtime } from '../../core/runtime.js';
import { KeyholdError } from '../../errors.js';
import { Closed, withErrors } from '../schemas.js';

const PublicKeyView = Closed({ public_key_pem: Type.String(), fingerprint: Type.String(), chain: Type.Optional(Type.String()) });
const CheckpointView = Closed({
  chain: Type.String(), head_seq: Type.Integer(), head_hash: Type.String(), signed_at: Type.String(),
  key: Type.String(), signature: Type.String(), entry_seq: Type.Integer(), entry_hash: Type.String(),
});

/** What `keyhold audit verify` needs from a running server: the public key, and the latest checkpoint. */
export function auditRoutes(app: FastifyInstance, runtime: Runtime): void {
  app.get('/v1/sys/audit/public-key', {
    schema: { tags: ['sys'], summary: 'The audit checkpoint public key (PEM, SPKI) and its sha256 fingerprint', response: { 200: PublicKeyView } },
    // A public key: anyone may check the log with it.
    config: { public: true },
  }, async () => {
    const chain = runtime.audit.status.chain;
    return { public_key_pem: runtime.auditSigner.publicKeyPem, fingerprint: runtime.auditSigner.fingerprint, ...(chain ? { chain } : {}) };
  });

  app.get('/v1/sys/audit/checkpoint', {
    schema: { tags: ['sys'], summary: 'The latest audit checkpoint (for keyhold audit verify --checkpoint)', response: withErrors({ 200: CheckpointView }) },
    config: { operation: 'audit.checkpoint', authorize: () => [[policyPath(MOUNTS.audit), 'read']] },
  }, async () => {
    const checkpoint = runtime.audit.lastCheckpoint;
    if (!checkpoint) throw new KeyholdError('ERR_NOT_FOUND', 'no audit checkpoint yet');
    return exportCheckpoint(checkpoint);
  });
}
