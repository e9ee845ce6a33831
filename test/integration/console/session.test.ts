/**
 * The console's session security with a real server (real SoftHSM) and a real Chromium: no
 * session → 401; the strict CSP (an injected inline script does not run); the session cookie's
 * flags and nothing secret in web storage; CSRF (a cookie-authenticated POST without or with a
 * wrong token is refused, and an attacker's page, same-site or cross-site, cannot act); logout
 * ends the session for good.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { closeBrowsers, expectNoAxeViolations, launchBrowser, newContext, screenshot, webStorage } from '../../helpers/browser.js';
import { auditRecords } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { request } from '../api/api-helpers.js';
import { asRoot, sessionCookie, signInWithToken, startConsoleServer, type ConsoleServer } from './support.js';

const cookieHeader = async (context: BrowserContext, address: string) => (await context.cookies(address)).map((c) => `${c.name}=${c.value}`).join('; ');

describe('console session security (real server, real Chromium)', { timeout: 300_000 }, () => {
  let s: ConsoleServer;
  let browser: Browser;
  before(async () => {
    s = await startConsoleServer('keyhold-console-session-');
    browser = await launchBrowser();
    await asRoot(s, 'POST', '/v1/keys', { name: 'target', type: 'aes256-gcm', protection: 'wrapped' });
  });
  after(async () => {
    await closeBrowsers();
    await s?.server.stop();
  });

  it('without a session, the API answers 401 and the console shows only its login page', async () => {
    for (const [method, path] of [['GET', '/v1/keys'], ['GET', '/v1/auth/session'], ['POST', '/v1/auth/logout'], ['POST', '/v1/keys/target/rotate'], ['GET', '/v1/sys/audit/verify']] as const) {
      const r = await request(s.address, { method, path });
      assert.equal(r.status, 401, `${method} ${path}: ${r.text}`);
      assert.equal(r.body?.error?.code, 'ERR_UNAUTHENTICATED', `${method} ${path}`);
    }
    // A cookie that is not a live token is no session either, whatever the CSRF header says.
    const forged = await request(s.address, { method: 'GET', path: '/v1/keys', headers: { cookie: 'keyhold_session=khs.forged' } });
    assert.equal(forged.status, 401, forged.text);
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${s.address}/ui`);
    assert.match(page.url(), /\/ui\/$/, '/ui redirects to /ui/');
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
    await expectNoAxeViolations(page, 'login page');
    await page.getByText('Bootstrap: sign in with a token').click();
    await expectNoAxeViolations(page, 'login page, token form open');
    await page.getByText('Bootstrap: sign in with a token').click();
    await screenshot(page, 'login');
    await context.close();
  });

  it('serves the console with a strict Content-Security-Policy that stops injected inline code', async () => {
    const r = await request(s.address, { method: 'GET', path: '/ui/' });
    assert.equal(r.status, 200);
    const csp = String(r.headers['content-security-policy']);
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k as string, v.join(' ')]));
    assert.equal(directives.get('default-src'), "'self'", csp);
    assert.equal(directives.get('script-src'), "'self'", csp);
    assert.equal(directives.get('style-src'), "'self'", csp);
    assert.equal(directives.get('object-src'), "'none'", csp);
    assert.equal(directives.get('frame-ancestors'), "'none'", csp);
    assert.equal(directives.get('base-uri'), "'none'", csp);
    assert.equal(directives.get('img-src'), "'self' data:", csp);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, csp);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    // The API's JSON is not a page: no CSP work on the benchmarked path.
    const api = await request(s.address, { method: 'GET', path: '/v1/sys/health' });
    assert.equal(api.headers['content-security-policy'], undefined);

    const context = await newContext(browser);
    const page = await context.newPage();
    const violations: string[] = [];
    await page.exposeFunction('reportViolation', (d: string) => { violations.push(d); });
    await page.goto(`${s.address}/ui/`);
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    // What an XSS would try: an inline script, an inline event handler, an inline style.
    const ran = await page.evaluate(async () => {
      const w = window as unknown as { reportViolation: (d: string) => Promise<void>; injected?: number };
      document.addEventListener('securitypolicyviolation', (e) => { void w.reportViolation(e.violatedDirective); });
      const script = document.createElement('script');
      script.textContent = 'window.injected = 1';
      document.body.append(script);
      const img = document.createElement('div');
      img.setAttribute('onclick', 'window.injected = 2');
      document.body.append(img);
      img.click();
      const styled = document.createElement('p');
      styled.setAttribute('style', 'color: rgb(255, 0, 0)');
      document.body.append(styled);
      await new Promise((r) => setTimeout(r, 100));
      return { injected: w.injected, color: getComputedStyle(styled).color };
    });
    assert.equal(ran.injected, undefined, 'an injected inline script or handler ran');
    assert.notEqual(ran.color, 'rgb(255, 0, 0)', 'an inline style attribute applied');
    await pollUntil('CSP violation reports', () => violations.length >= 3 || undefined, { timeoutMs: 5000 });
    assert.ok(violations.some((v) => v.startsWith('script-src')), violations.join());
    await context.close();
  });

  it('a session cookie is HttpOnly, Secure, SameSite=Strict, holds a child of the token, and nothing secret is in web storage', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInWithToken(page, s.address, s.rootToken);
    const cookie = await sessionCookie(page);
    assert.ok(cookie, 'no keyhold_session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires <= Date.now() / 1000 + 3700, `expires ${cookie.expires}`);
    assert.notEqual(cookie.value, s.rootToken, 'the session must hold a child token, never the root token itself');
    // The CSRF secret is derived from the session token (bound to it): no cookie of its own to plant.
    assert.equal((await context.cookies()).find((c) => c.name === 'keyhold_csrf'), undefined, 'no CSRF secret cookie');
    // Scripts see neither cookie, and the console stored nothing.
    assert.doesNotMatch(await page.evaluate(() => document.cookie), /keyhold_session|keyhold_csrf/);
    for (const hash of ['#/overview', '#/keys', '#/keys/target', '#/secrets', '#/audit']) {
      await page.goto(`${s.address}/ui/${hash}`);
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      const stored = await webStorage(page);
      assert.deepEqual(stored, { local: {}, session: {} }, `web storage on ${hash}`);
    }
    assert.ok(!(await page.content()).includes(s.rootToken), 'the root token is in the page');
    assert.ok(!(await page.content()).includes(cookie.value), 'the session token is in the page');
    const me = await request(s.address, { method: 'GET', path: '/v1/auth/session', headers: { cookie: await cookieHeader(context, s.address) } });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.via, 'session');
    assert.deepEqual(me.body.policies, ['root']);
    assert.match(me.body.csrf_token, /.{20,}/);
    await context.close();
  });

  it('refuses a cookie-authenticated state-changing call without a valid CSRF token (403 ERR_CSRF)', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInWithToken(page, s.address, s.rootToken);
    const cookie = await cookieHeader(context, s.address);
    const attempts: Array<[string, Record<string, string>]> = [
      ['no token', {}],
      ['empty token', { 'x-csrf-token': '' }],
      ['wrong token', { 'x-csrf-token': 'abc-not-a-token' }],
      ['a token for another secret', { 'x-csrf-token': 'mBfi6yyy-0C0h3W4JWlJBSpIVmnVPjDiMSTw' }],
    ];
    for (const [what, headers] of attempts) {
      for (const [method, path, json] of [['POST', '/v1/keys', { name: `csrf-${what.length}`, type: 'aes256-gcm', protection: 'wrapped' }], ['POST', '/v1/keys/target/rotate', undefined], ['PUT', '/v1/secrets/csrf/x', { data: { a: '1' } }], ['DELETE', '/v1/keys/target', undefined], ['POST', '/v1/auth/logout', undefined]] as const) {
        const r = await request(s.address, { method, path, headers: { cookie, ...headers }, ...(json ? { json } : {}) });
        assert.equal(r.status, 403, `${what}: ${method} ${path}: ${r.text}`);
        assert.equal(r.body?.error?.code, 'ERR_CSRF', `${what}: ${method} ${path}`);
      }
    }
    assert.equal((await asRoot(s, 'GET', '/v1/keys/target')).latest_version, 1, 'a refused rotation rotated');
    assert.deepEqual((await asRoot(s, 'GET', '/v1/keys')).keys, ['target'], 'a refused create created');
    // In the page itself, a script that omits the header is refused too.
    const inPage = await page.evaluate(async () => (await fetch('/v1/keys/target/rotate', { method: 'POST' })).status);
    assert.equal(inPage, 403);
    // GET needs no CSRF token (it changes nothing), and with the right token the POST works.
    const me = await request(s.address, { method: 'GET', path: '/v1/auth/session', headers: { cookie } });
    assert.equal(me.status, 200, me.text);
    const ok = await request(s.address, { method: 'POST', path: '/v1/keys/target/rotate', headers: { cookie, 'x-csrf-token': me.body.csrf_token } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.latest_version, 2);
    // A bearer caller needs no CSRF token (no ambient credential), as before.
    const bearer = await request(s.address, { method: 'POST', path: '/v1/keys/target/rotate', token: s.rootToken, headers: { cookie } });
    assert.equal(bearer.status, 200, bearer.text);
    // The refusals are audited with their code.
    const refused = auditRecords(s.dataDir).filter((e) => e.type === 'response' && e.outcome?.code === 'ERR_CSRF');
    assert.ok(refused.length >= attempts.length * 5, `audited CSRF refusals: ${refused.length}`);
    await context.close();
  });

  it('an attacker\'s page, cross-site or same-site, cannot make the signed-in browser act', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInWithToken(page, s.address, s.rootToken);
    const before = (await asRoot(s, 'GET', '/v1/keys/target')).latest_version as number;
    const auditBefore = auditRecords(s.dataDir).length;
    const target = `${s.address}/v1/keys/target/rotate`;
    // The attacker's page: a self-submitting form (text/plain, so it needs no preflight) and a no-cors fetch.
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><html><body><form id="f" method="POST" action="${target}" enctype="text/plain"><input name="a" value="b"></form>
<script>fetch(${JSON.stringify(target)}, { method: 'POST', credentials: 'include', mode: 'no-cors' }).finally(() => document.getElementById('f').submit());</script></body></html>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const port = (evil.address() as AddressInfo).port;
    try {
      // Cross-site (localhost is another site than 127.0.0.1): SameSite=Strict keeps the cookie home → 401.
      // Same-site, cross-origin (another port of 127.0.0.1): the cookie goes, the CSRF token cannot → 403.
      for (const origin of [`http://localhost:${port}`, `http://127.0.0.1:${port}`]) {
        const attack = await context.newPage();
        await attack.goto(`${origin}/`);
        await attack.waitForURL((u) => u.toString().startsWith(target), { timeout: 10_000 });
        await attack.close();
      }
    } finally {
      evil.close();
    }
    assert.equal((await asRoot(s, 'GET', '/v1/keys/target')).latest_version, before, 'the attacker rotated the key');
    const outcomes = auditRecords(s.dataDir).slice(auditBefore).filter((e) => e.type === 'response' && e.operation === 'keys.rotate').map((e) => e.outcome?.code);
    assert.ok(outcomes.length >= 4, `attempts audited: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.every((c) => c === 'ERR_CSRF' || c === 'ERR_UNAUTHENTICATED'), JSON.stringify(outcomes));
    assert.ok(outcomes.includes('ERR_UNAUTHENTICATED') && outcomes.includes('ERR_CSRF'), JSON.stringify(outcomes));
    await context.close();
  });

  it('sign-out revokes the session\'s token and clears the cookie; the old cookie no longer works', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInWithToken(page, s.address, s.rootToken);
    const cookie = await cookieHeader(context, s.address);
    assert.equal((await request(s.address, { method: 'GET', path: '/v1/keys', headers: { cookie } })).status, 200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    assert.equal(await sessionCookie(page), undefined, 'the cookie was not cleared');
    // The old cookie, replayed as an attacker who copied it would: the token behind it is revoked.
    for (const path of ['/v1/keys', '/v1/auth/session']) {
      const r = await request(s.address, { method: 'GET', path, headers: { cookie } });
      assert.equal(r.status, 401, `${path}: ${r.text}`);
    }
    // Logout is a session's: with a bearer token it refuses, and revokes nothing.
    const bearerLogout = await request(s.address, { method: 'POST', path: '/v1/auth/logout', token: s.rootToken });
    assert.equal(bearerLogout.status, 400, bearerLogout.text);
    assert.equal(bearerLogout.body?.error?.code, 'ERR_BAD_REQUEST');
    // Only the session's child was revoked: the root token still works.
    assert.equal((await request(s.address, { method: 'GET', path: '/v1/keys', token: s.rootToken })).status, 200);
    await page.reload();
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    await context.close();
  });
});
