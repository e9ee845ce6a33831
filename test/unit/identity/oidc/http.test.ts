/** keyhold's calls to a provider: bounded, no redirects followed, failures named by code (never a 500). */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { discover } from '../../../../src/identity/oidc/discovery.js';
import { callProvider, MAX_PROVIDER_ANSWER_BYTES } from '../../../../src/identity/oidc/http.js';
import { keyholdCode } from '../../../helpers/errors.js';

describe('calls to the provider', () => {
  let server: Server;
  let base = '';
  before(async () => {
    server = createServer((req, res) => {
      switch (req.url) {
        case '/redirect': res.writeHead(302, { location: 'https://evil.example/' }); res.end(); break;
        case '/huge': res.writeHead(200, { 'content-type': 'application/json' }); res.end(`"${'x'.repeat(MAX_PROVIDER_ANSWER_BYTES)}"`); break;
        case '/huge-chunked': res.writeHead(200); for (let i = 0; i < 40; i++) res.write('x'.repeat(8192)); res.end(); break;
        case '/text': res.writeHead(200); res.end('<html>hello</html>'); break;
        case '/ok': res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"a":1}'); break;
        case '/down/.well-known/openid-configuration': res.writeHead(500); res.end('oops'); break;
        case '/missing/.well-known/openid-configuration': res.writeHead(404); res.end(); break;
        default: res.writeHead(404); res.end();
      }
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((res) => server.close(() => res())));

  it('reads a JSON object', async () => assert.deepEqual(await callProvider(`${base}/ok`, { method: 'GET' }, 'x'), { status: 200, json: { a: 1 } }));
  it('gives no object for an answer that is not JSON', async () => assert.deepEqual(await callProvider(`${base}/text`, { method: 'GET' }, 'x'), { status: 200, json: undefined }));
  it('follows no redirect', async () => {
    await assert.rejects(callProvider(`${base}/redirect`, { method: 'GET' }, 'discovery document'), keyholdCode('ERR_OIDC_PROVIDER_ERROR', /redirect/));
  });
  it('refuses an answer over the size limit, declared or not', async () => {
    await assert.rejects(callProvider(`${base}/huge`, { method: 'GET' }, 'x'), keyholdCode('ERR_OIDC_PROVIDER_ERROR', /more than/));
    await assert.rejects(callProvider(`${base}/huge-chunked`, { method: 'GET' }, 'x'), keyholdCode('ERR_OIDC_PROVIDER_ERROR', /more than/));
  });
  it('names an unreachable provider ERR_OIDC_PROVIDER_UNREACHABLE', async () => {
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((res) => closed.close(() => res()));
    await assert.rejects(callProvider(`http://127.0.0.1:${port}/`, { method: 'GET' }, 'token endpoint'), keyholdCode('ERR_OIDC_PROVIDER_UNREACHABLE', /token endpoint could not be reached/));
  });
  it('tells a provider failing discovery (5xx: its fault) from a wrong issuer URL (4xx: the configuration\'s)', async () => {
    await assert.rejects(discover(`${base}/down`, 'ERR_OIDC_DISCOVERY_INVALID'), keyholdCode('ERR_OIDC_PROVIDER_ERROR', /HTTP 500/));
    await assert.rejects(discover(`${base}/missing`, 'ERR_OIDC_DISCOVERY_INVALID'), keyholdCode('ERR_OIDC_DISCOVERY_INVALID', /HTTP 404/));
  });
});
