import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, verify } from 'node:crypto';
import { rmSync } from 'node:fs';
import { cosignKeyPair, cosignSign, cosignVerify, OCI_MANIFEST, pushImage, startRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/server.js';

// Smoke test of the image-attestation test infrastructure itself: a real registry, images pushed
// over its HTTP API, and signatures made by the real cosign, read back and checked independently.
// Generous timeout: the first run may build cosign (minutes on a loaded 2-core machine).
test('registry: cosign signs an image by digest; the .sig manifest verifies with node:crypto and cosign', { timeout: 30 * 60_000 }, async () => {
  const registry = await startRegistry();
  const keyDir = tempDir('keyhold-cosign-key-');
  try {
    const repo = 'demo/app';
    const signed = await pushImage(registry, repo, 'v1');
    const unsigned = await pushImage(registry, repo, 'v2');
    assert.match(signed.digest, /^sha256:[0-9a-f]{64}$/);
    assert.notEqual(signed.digest, unsigned.digest);
    assert.equal(signed.reference, `${registry.host}/${repo}@${signed.digest}`);

    const key = await cosignKeyPair(keyDir);
    assert.match(key.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    await cosignSign(signed.reference, key, { purpose: 'smoke' });

    const sigTag = (digest: string) => `${digest.replace(':', '-')}.sig`;
    const sigResponse = await fetch(`${registry.url}/v2/${repo}/manifests/${sigTag(signed.digest)}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(sigResponse.status, 200);
    const sigManifest = await sigResponse.json() as any;
    assert.equal(sigManifest.mediaType, OCI_MANIFEST);
    assert.equal(sigManifest.layers.length, 1);
    const layer = sigManifest.layers[0];
    assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const sigB64 = layer.annotations?.['dev.cosignproject.cosign/signature'];
    assert.equal(typeof sigB64, 'string');

    const blob = await fetch(`${registry.url}/v2/${repo}/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    const payload = Buffer.from(await blob.arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(payload).digest('hex')}`, layer.digest);
    assert.equal(payload.length, layer.size);
    const simple = JSON.parse(payload.toString('utf8'));
    assert.equal(simple.critical.type, 'cosign container image signature');
    assert.equal(simple.critical.image['docker-manifest-digest'], signed.digest);
    assert.equal(simple.critical.identity['docker-reference'], `${registry.host}/${repo}`);
    assert.deepEqual(simple.optional, { purpose: 'smoke' });

    assert.equal(verify('sha256', payload, { key: key.publicKeyPem, dsaEncoding: 'der' }, Buffer.from(sigB64, 'base64')), true);
    // ...and over the payload bytes only: one changed byte fails.
    const tampered = Buffer.from(payload);
    const at = tampered.length - 2;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at);
    assert.equal(verify('sha256', tampered, { key: key.publicKeyPem, dsaEncoding: 'der' }, Buffer.from(sigB64, 'base64')), false);

    const noSig = await fetch(`${registry.url}/v2/${repo}/manifests/${sigTag(unsigned.digest)}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(noSig.status, 404);
    await noSig.arrayBuffer();

    assert.equal(await cosignVerify(signed.reference, key.publicKeyPath), true);
    assert.equal(await cosignVerify(unsigned.reference, key.publicKeyPath), false);
  } finally {
    await registry.stop();
    rmSync(keyDir, { recursive: true, force: true });
  }
});
