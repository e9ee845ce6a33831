import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call, startDev, type DevServer } from '../../helpers/server.js';

describe('health, metrics and the OpenAPI document', () => {
  let server: DevServer;

  before(async () => {
    server = await startDev();
    const t = server.rootToken;
    await call(server.address, 'POST', '/v1/keys', t, { name: 'obs', type: 'aes256-gcm', protection: 'hsm' });
    for (let i = 0; i < 3; i++) await call(server.address, 'POST', '/v1/keys/obs/encrypt', t, { plaintext: 'aGVsbG8=' });
    await call(server.address, 'POST', '/v1/keys/obs/decrypt', t, { ciphertext: 'keyhold:obs:v1:AAAA' });
  });

  after(async () => {
    await server.stop();
  });

  it('reports health with the HSM probe and audit state', async () => {
    const health = await call(server.address, 'GET', '/v1/sys/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.sealed, false);
    assert.equal(health.body.hsm.ok, true);
    assert.equal(health.body.hsm.token, 'keyhold-dev');
    assert.equal(health.body.audit.ok, true);
  });

  it('counts requests by operation and status, HSM calls, and reports HSM and audit up', async () => {
    const metrics = (await call(server.address, 'GET', '/metrics')).text;
    assert.match(metrics, /keyhold_http_requests_total\{operation="keys\.encrypt",status="200"\} 3\b/);
    assert.match(metrics, /keyhold_http_requests_total\{operation="keys\.decrypt",status="400"\} 1\b/);
    assert.match(metrics, /keyhold_http_request_duration_seconds_count\{operation="keys\.encrypt"\} 3\b/);
    const hsmCalls = Number(/keyhold_hsm_calls_total (\d+)/.exec(metrics)?.[1]);
    assert.ok(hsmCalls >= 4, `hsm calls ${hsmCalls}: key generation and three on-device encryptions`);
    assert.match(metrics, /keyhold_hsm_up 1\b/);
    assert.match(metrics, /keyhold_audit_up 1\b/);
  });

  it('serves an OpenAPI 3 document with every route and its schemas', async () => {
    const doc = (await call(server.address, 'GET', '/v1/openapi.json')).body;
    assert.match(doc.openapi, /^3\./);
    for (const path of ['/v1/keys', '/v1/keys/{name}/encrypt', '/v1/keys/{name}/decrypt', '/v1/secrets/{*}', '/v1/policies/{name}', '/v1/tokens', '/v1/sys/health']) {
      assert.ok(doc.paths[path], `OpenAPI lacks ${path}`);
    }
    const encrypt = doc.paths['/v1/keys/{name}/encrypt'].post;
    assert.equal(encrypt.requestBody.content['application/json'].schema.additionalProperties, false);
    assert.ok(encrypt.responses['200'] && encrypt.responses['400']);
  });

  it('writes structured JSON logs without the token', async () => {
    await call(server.address, 'GET', '/v1/keys/nope', server.rootToken);
    const lines = server.output().split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 0, 'no JSON log lines');
    for (const line of lines) JSON.parse(line);
    assert.equal(server.output().includes(server.rootToken), false, 'the root token appears in the server output');
  });
});
