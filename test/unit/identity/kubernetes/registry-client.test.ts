import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RegistryClient, RegistryError, parseBearerChallenge } from '../../../../src/identity/kubernetes/registry-client.js';

describe('registry client', () => {
  // A loopback HTTP server whose answer each test sets: the protocol edges a real registry rarely shows.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const server = createServer((req, res) => handler(req, res));
  let host = '';
  before(async () => {
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((res) => server.close(() => res())));

  const refused = (message: RegExp) => (err: unknown) => err instanceof RegistryError && message.test(err.message);

  it('parses Bearer challenges, and nothing else', () => {
    assert.deepEqual(parseBearerChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'),
      { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' });
    assert.deepEqual(parseBearerChallenge('bearer realm="https://x/t"'), { realm: 'https://x/t' });
    assert.equal(parseBearerChallenge('Basic realm="registry"'), undefined);
    assert.equal(parseBearerChallenge(null), undefined);
  });

  it('refuses a realm with credentials in it, or one that is not http(s)', async () => {
    for (const realm of [`http://user:pw@${'127.0.0.1:1'}/token`, 'ftp://127.0.0.1/token', 'not a url']) {
      handler = (_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="s"` }).end();
      await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/realm/), realm);
    }
  });

  it('a 401 without a Bearer challenge, a token service without a token, and a token refused again are errors', async () => {
    handler = (_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/credentials/));
    handler = (req, res) => {
      if (req.url?.startsWith('/token')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"expires_in": 60}');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="s"` }).end();
    };
    await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/sent no token/));
    handler = (req, res) => {
      if (req.url?.startsWith('/token')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"token": "t"}');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="s"` }).end();
    };
    await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/refused its own anonymous pull token/));
  });

  it('asks for a pull token for the one repository, sends it, and reuses it', async () => {
    const seen: string[] = [];
    handler = (req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? '-'}`);
      if (req.url?.startsWith('/token')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token": "tok", "expires_in": 300}');
      else if (req.headers.authorization === 'Bearer tok') res.end('ok');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="reg",scope="repository:a/b:pull,push"` }).end();
    };
    const client = new RegistryClient(1024);
    assert.equal((await client.get(host, 'a/b', 'manifests/x', { insecure: true })).body.toString(), 'ok');
    assert.equal((await client.get(host, 'a/b', 'blobs/y', { insecure: true })).body.toString(), 'ok');
    assert.deepEqual(seen, ['/v2/a/b/manifests/x -', '/token?service=reg&scope=repository%3Aa%2Fb%3Apull -', '/v2/a/b/manifests/x Bearer tok', '/v2/a/b/blobs/y Bearer tok']);
  });

  it('a Basic challenge gets the configured credentials for that host, and only for that host', async () => {
    const good = `Basic ${Buffer.from('puller:secret').toString('base64')}`;
    handler = (req, res) => {
      if (req.headers.authorization === good) res.end('ok');
      else res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
    };
    const forHost = (password: string) => (h: string) => (h === host ? { username: 'puller', password } : undefined);
    assert.equal((await new RegistryClient(1024, forHost('secret')).get(host, 'a/b', 'manifests/x', { insecure: true })).body.toString(), 'ok');
    await assert.rejects(new RegistryClient(1024, forHost('wrong')).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/refused the credentials configured for/));
    await assert.rejects(new RegistryClient(1024, () => undefined).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/wants credentials keyhold does not have/));
    // Credentials for another host are not this host's.
    await assert.rejects(new RegistryClient(1024, (h) => (h === 'other.example' ? { username: 'puller', password: 'secret' } : undefined)).get(host, 'a/b', 'manifests/x', { insecure: true }), refused(/wants credentials keyhold does not have/));
  });

  it('stops reading a body past the cap, declared or not', async () => {
    handler = (_req, res) => res.writeHead(200, { 'content-length': '5000' }).end('x'.repeat(5000));
    await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'blobs/big', { insecure: true }), refused(/too large/));
    handler = (_req, res) => {
      res.writeHead(200); // chunked: no length to go by
      for (let i = 0; i < 10; i++) res.write('x'.repeat(500));
      res.end();
    };
    await assert.rejects(new RegistryClient(1024).get(host, 'a/b', 'blobs/big', { insecure: true }), refused(/too large/));
  });
});
