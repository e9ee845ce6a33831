/** params_sha256 (src/approvals/params-hash.ts) and the shown form of credential fields (secret-fields.ts). */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { paramsSha256 } from '../../../src/approvals/params-hash.js';
import { hasSecretFields, shownBody } from '../../../src/approvals/secret-fields.js';

const base = { operation: 'policies.write', method: 'PUT', url: '/v1/policies/ops', body: { rules: [{ path: 'keys/*', capabilities: ['read'] }] } };

describe('params_sha256', () => {
  it('is hex SHA-256, the same for the same parameters whatever the key order', () => {
    const h = paramsSha256(base);
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(paramsSha256({ ...base, body: { rules: [{ capabilities: ['read'], path: 'keys/*' }] } }), h);
    assert.equal(paramsSha256({ url: base.url, body: base.body, method: base.method, operation: base.operation }), h);
  });

  it('changes with any parameter: operation, method, URL (query included), any body value', () => {
    const h = paramsSha256(base);
    const variants = [
      { ...base, operation: 'policies.delete' },
      { ...base, method: 'POST' },
      { ...base, url: '/v1/policies/opz' },
      { ...base, url: '/v1/policies/ops?x=1' },
      { ...base, body: { rules: [{ path: 'keys/*', capabilities: ['read', 'update'] }] } },
      { ...base, body: { rules: [{ path: 'keys/+', capabilities: ['read'] }] } },
      { ...base, body: null },
      { ...base, body: {} },
    ];
    const hashes = new Set([h, ...variants.map(paramsSha256)]);
    assert.equal(hashes.size, variants.length + 1);
  });

  it('treats no body and a null body alike (both are "none")', () => {
    assert.equal(paramsSha256({ ...base, body: undefined }), paramsSha256({ ...base, body: null }));
  });
});

describe('credential fields', () => {
  const mac = (v: string) => `hmac-sha256:${createHmac('sha256', 'k'.repeat(32)).update(v).digest('hex')}`;
  const body = { issuer: 'https://k', api_server_url: 'https://k:6443', reviewer_jwt: 'eyJ.secret.jwt', registry_credentials: [{ host: 'r', username: 'u', password: 'hunter2' }] };

  it('are shown as a keyed hash, never the value; the original body is not changed', () => {
    assert.ok(hasSecretFields('auth.kubernetes.configure'));
    const shown = shownBody('auth.kubernetes.configure', body, mac) as typeof body & Record<string, any>;
    const text = JSON.stringify(shown);
    assert.ok(!text.includes('eyJ.secret.jwt') && !text.includes('hunter2'), text);
    assert.deepEqual(shown.reviewer_jwt, { redacted: mac(JSON.stringify('eyJ.secret.jwt')) });
    assert.deepEqual((shown.registry_credentials as any)[0], { host: 'r', username: 'u', password: { redacted: mac(JSON.stringify('hunter2')) } });
    assert.equal(body.reviewer_jwt, 'eyJ.secret.jwt');
    assert.equal(shown.issuer, 'https://k');
  });

  it('still bind the hash: another secret value gives another params_sha256', () => {
    const hash = (b: unknown) => paramsSha256({ operation: 'auth.kubernetes.configure', method: 'PUT', url: '/v1/auth/kubernetes/config', body: shownBody('auth.kubernetes.configure', b, mac) });
    assert.notEqual(hash(body), hash({ ...body, reviewer_jwt: 'eyJ.other.jwt' }));
  });

  it('leave other operations\' bodies as they are', () => {
    assert.equal(hasSecretFields('keys.configure'), false);
    assert.deepEqual(shownBody('keys.configure', { disabled: true }, mac), { disabled: true });
    assert.equal(shownBody('auth.kubernetes.configure', null, mac), null);
  });
});
