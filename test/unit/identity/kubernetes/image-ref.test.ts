import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseImageId, parsePinned } from '../../../../src/identity/kubernetes/image-ref.js';

const D = `sha256:${'e'.repeat(64)}`;

it('parsePinned: host, repository and digest; Docker Hub defaults; tags beside digests ignored; unpinned is undefined', () => {
  assert.deepEqual(parsePinned(`127.0.0.1:5000/demo/app@${D}`), { image: `127.0.0.1:5000/demo/app@${D}`, host: '127.0.0.1:5000', repository: 'demo/app', digest: D });
  assert.deepEqual(parsePinned(`ghcr.io/org/app:v1@${D}`)?.repository, 'org/app');
  assert.deepEqual(parsePinned(`nginx@${D}`), { image: `nginx@${D}`, host: 'docker.io', repository: 'library/nginx', digest: D });
  assert.equal(parsePinned(`org/app@${D}`)?.host, 'docker.io');
  assert.equal(parsePinned(`localhost/app@${D}`)?.host, 'localhost');
  for (const unpinned of ['nginx', 'nginx:1.27', `nginx@sha256:${'e'.repeat(63)}`, `nginx@sha512:${'e'.repeat(128)}`, `UPPER/app@${D}`, '']) assert.equal(parsePinned(unpinned), undefined, unpinned);
});

it('parseImageId: runtime-resolved ids with or without a scheme', () => {
  assert.equal(parseImageId(`docker-pullable://ghcr.io/org/app@${D}`)?.digest, D);
  assert.equal(parseImageId(`ghcr.io/org/app@${D}`)?.host, 'ghcr.io');
  assert.equal(parseImageId(undefined), undefined);
  assert.equal(parseImageId('sha256:abc'), undefined);
});
