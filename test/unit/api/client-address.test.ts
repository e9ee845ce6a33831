/**
 * The client of a request (src/api/client-address.ts): the key it counts under in the flood limit
 * and the login lockout, which `api.trustedProxies` entries keyhold accepts, and the address
 * resolved through fastify's own trustProxy (a real fastify instance, requests injected with the
 * socket address and X-Forwarded-For of each case). The real server is tested in
 * test/integration/api/client-address.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { addressKey, clientAddress, clientKey, trustedProxyProblem } from '../../../src/api/client-address.js';

describe('addressKey: the key a client counts under', () => {
  it('is the address for IPv4, and the /64 for IPv6 in any spelling', () => {
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:DB8:0:0:1:2:3:4'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:abcd::9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('::'), '0:0:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4::/64');
    assert.equal(addressKey('1:2:3::'), '1:2:3:0::/64');
  });

  it('counts an IPv4-mapped address as its IPv4 address, dotted or in hex', () => {
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::FFFF:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::ffff:c000:207'), '192.0.2.7');
    assert.equal(addressKey('0:0:0:0:0:ffff:c000:0207'), '192.0.2.7');
    // Not mapped: ::ffff:0:c000:207 is another prefix.
    assert.equal(addressKey('0:0:0:ffff:0:0:c000:207'), '0:0:0:ffff::/64');
  });

  it('is idempotent: a key is its own key', () => {
    for (const ip of ['192.0.2.7', '2001:db8:1:2::5', '::ffff:10.0.0.1', '']) assert.equal(addressKey(addressKey(ip)), addressKey(ip));
  });
});

describe('api.trustedProxies entries', () => {
  it('accepts addresses and CIDRs of either family', () => {
    for (const ok of ['127.0.0.1', '127.0.0.1/32', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '10.1.2.3/32', '::1', '::1/128', 'fd00::/8', 'fc00::/7', '2001:db8:1::/48', '2001:db8::/128', '::ffff:10.0.0.0/104', '128.0.0.0/1']) {
      assert.equal(trustedProxyProblem(ok), undefined, ok);
    }
  });

  it('refuses trusting everything, whatever the spelling', () => {
    for (const all of ['0.0.0.0/0', '::/0', '10.0.0.0/0', '1.2.3.4/0']) assert.match(trustedProxyProblem(all) ?? '', /trusts every address/, all);
  });

  it('refuses what is not an address or CIDR: names, netmasks, octal or hex, ranges, zones, junk', () => {
    for (const bad of ['true', '*', 'loopback', 'uniquelocal', 'localhost', '10.0.0.0/255.0.0.0', '0177.0.0.1', '0x7f.0.0.1', '10.0.0', '10.0.0.0-10.0.0.9', 'fe80::1%eth0', '10.0.0.0 /8', ' 10.0.0.1', '10.0.0.0/8/8', '[::1]', '::1/']) {
      assert.notEqual(trustedProxyProblem(bad), undefined, bad);
    }
  });

  it('refuses prefix lengths out of range or spelled oddly', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/8.0', '10.0.0.0/ 8', '10.0.0.0/1000']) {
      assert.match(trustedProxyProblem(bad) ?? '', /prefix length/, bad);
    }
  });

  it('refuses address bits past the prefix, naming the network meant', () => {
    assert.match(trustedProxyProblem('10.1.2.3/8') ?? '', /write 10\.0\.0\.0\/8/);
    assert.match(trustedProxyProblem('192.168.1.1/16') ?? '', /write 192\.168\.0\.0\/16/);
    assert.equal(trustedProxyProblem('10.0.0.128/25'), undefined);
    assert.match(trustedProxyProblem('10.0.0.129/25') ?? '', /write 10\.0\.0\.128\/25/);
    assert.match(trustedProxyProblem('fd00::1/8') ?? '', /write fd00::\/8/);
    assert.match(trustedProxyProblem('2001:db8:1:2::1/64') ?? '', /write 2001:db8:1:2::\/64/);
    assert.match(trustedProxyProblem('2001:db8:ffff::/33') ?? '', /write 2001:db8:8000::\/33/);
  });
});

/** A fastify instance as the server builds it (trustProxy from the list), answering the resolved client. */
async function resolver(trusted: string[]) {
  const app = Fastify({ trustProxy: trusted.length > 0 ? trusted : false });
  app.get('/', async (request) => ({ ...clientAddress(request), key: clientKey(request) }));
  await app.ready();
  return async (remoteAddress: string, xff?: string | string[]) => {
    const res = await app.inject({ method: 'GET', url: '/', remoteAddress, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as { client: string; peer: string; key: string };
  };
}

describe('the client of a request', () => {
  it('without trusted proxies is the socket peer, whatever X-Forwarded-For says', async () => {
    const resolve = await resolver([]);
    assert.deepEqual(await resolve('192.0.2.1', '203.0.113.9'), { client: '192.0.2.1', peer: '192.0.2.1', key: '192.0.2.1' });
    assert.deepEqual(await resolve('127.0.0.1', '203.0.113.9, 198.51.100.1'), { client: '127.0.0.1', peer: '127.0.0.1', key: '127.0.0.1' });
    assert.deepEqual(await resolve('2001:db8:1:2::7', '203.0.113.9'), { client: '2001:db8:1:2::7', peer: '2001:db8:1:2::7', key: '2001:db8:1:2::/64' });
    assert.deepEqual(await resolve('::ffff:192.0.2.1'), { client: '192.0.2.1', peer: '192.0.2.1', key: '192.0.2.1' });
  });

  it('behind a trusted proxy is the rightmost untrusted X-Forwarded-For entry', async () => {
    const resolve = await resolver(['127.0.0.1/32', '10.0.0.0/8']);
    assert.deepEqual(await resolve('127.0.0.1', '203.0.113.9'), { client: '203.0.113.9', peer: '127.0.0.1', key: '203.0.113.9' });
    // The client prepended an address of its choice; the proxy appended the real one.
    assert.equal((await resolve('127.0.0.1', '198.51.100.66, 203.0.113.9')).client, '203.0.113.9');
    // Two trusted hops: the ingress (10.1.2.3) then a sidecar on loopback.
    assert.equal((await resolve('127.0.0.1', '198.51.100.66, 203.0.113.9, 10.1.2.3')).client, '203.0.113.9');
    // The client prepended a trusted address to its real one: still not believed past the first untrusted entry.
    assert.equal((await resolve('127.0.0.1', '10.9.9.9, 203.0.113.9')).client, '203.0.113.9');
    // Repeated headers are one list (Node joins them).
    assert.equal((await resolve('127.0.0.1', ['198.51.100.66', '203.0.113.9'])).client, '203.0.113.9');
    // IPv6 clients, mapped ones as IPv4.
    assert.deepEqual(await resolve('127.0.0.1', '2001:db8:1:2::abcd'), { client: '2001:db8:1:2::abcd', peer: '127.0.0.1', key: '2001:db8:1:2::/64' });
    assert.deepEqual(await resolve('::ffff:127.0.0.1', '::ffff:203.0.113.9'), { client: '203.0.113.9', peer: '127.0.0.1', key: '203.0.113.9' });
  });

  it('from an untrusted peer ignores X-Forwarded-For', async () => {
    const resolve = await resolver(['10.0.0.0/8']);
    assert.deepEqual(await resolve('192.0.2.1', '203.0.113.9'), { client: '192.0.2.1', peer: '192.0.2.1', key: '192.0.2.1' });
    assert.deepEqual(await resolve('192.0.2.1', '10.0.0.5'), { client: '192.0.2.1', peer: '192.0.2.1', key: '192.0.2.1' });
  });

  it('is never text of the sender\'s choosing: an entry that is no address makes the hop that passed it on the client', async () => {
    const resolve = await resolver(['127.0.0.1/32', '10.0.0.0/8']);
    for (const xff of ['garbage', 'unknown', '_hidden', '203.0.113.9:99999', '[2001:db8::1', '999.1.1.1', '0x7f000001', 'a'.repeat(8000), '"><script>', '%00', '203.0.113.9 203.0.113.10']) {
      assert.deepEqual(await resolve('127.0.0.1', xff), { client: '127.0.0.1', peer: '127.0.0.1', key: '127.0.0.1' }, xff.slice(0, 40));
    }
    // Behind the second proxy: the first (10.1.2.3) handed on the junk.
    assert.equal((await resolve('127.0.0.1', 'garbage, 10.1.2.3')).client, '10.1.2.3');
    // proxy-addr reads 0177.0.0.1 as 127.0.0.1 (trusted) and would go on to the attacker's entry; keyhold stops there.
    assert.equal((await resolve('127.0.0.1', '198.51.100.66, 0177.0.0.1')).client, '127.0.0.1');
    // Empty and blank headers and empty list entries are no entries.
    for (const xff of ['', ' ', ',', ' , ,']) assert.equal((await resolve('127.0.0.1', xff)).client, '127.0.0.1', JSON.stringify(xff));
    assert.equal((await resolve('127.0.0.1', ', 203.0.113.9,')).client, '203.0.113.9');
  });

  it('takes an address with a port as that address (some load balancers append ADDRESS:PORT)', async () => {
    const resolve = await resolver(['127.0.0.1/32']);
    assert.deepEqual(await resolve('127.0.0.1', '198.51.100.66, 203.0.113.9:51234'), { client: '203.0.113.9', peer: '127.0.0.1', key: '203.0.113.9' });
    assert.deepEqual(await resolve('127.0.0.1', '[2001:db8:1:2::9]:443'), { client: '2001:db8:1:2::9', peer: '127.0.0.1', key: '2001:db8:1:2::/64' });
    assert.equal((await resolve('127.0.0.1', '[2001:db8:1:2::9]')).client, '2001:db8:1:2::9');
  });
});
