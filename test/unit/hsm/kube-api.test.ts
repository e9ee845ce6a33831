import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { inClusterConnection } from '../../../src/hsm/kube-api.js';
import { tempDir } from '../../helpers/temp.js';

describe('the in-cluster Kubernetes connection', () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  afterEach(() => {
    for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('uses the service host (IPv6 in brackets) and reads the projected token again for every request (it is rotated on disk)', async () => {
    const dir = tempDir('keyhold-sa-');
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    writeFileSync(join(dir, 'token'), 'first\n');
    process.env.KUBERNETES_SERVICE_HOST = 'fd00::1';
    process.env.KUBERNETES_SERVICE_PORT = '6443';
    const c = inClusterConnection(dir);
    assert.equal(c.server, 'https://[fd00::1]:6443');
    assert.equal(String(c.tls.ca), 'CA');
    assert.deepEqual(await c.headers(), { authorization: 'Bearer first' });
    writeFileSync(join(dir, 'token'), 'second');
    assert.deepEqual(await c.headers(), { authorization: 'Bearer second' });
  });

  it('outside a cluster says so', () => {
    delete process.env.KUBERNETES_SERVICE_HOST;
    assert.throws(() => inClusterConnection(tempDir('keyhold-sa-')), (err: { code?: string; message: string }) => err.code === 'ERR_CONFIG' && /not running in a cluster/.test(err.message));
  });
});
