/**
 * People in the console, in a real Chromium against a real server (real SoftHSM) and a real
 * OpenID provider (panva's oidc-provider): an operator enrols TOTP on the enrolment page and
 * signs in with password + TOTP (a wrong code is refused); SSO through the provider's own login
 * page; a quorum approval of a key rotation by operators in separate browser contexts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { closeBrowsers, expectNoAxeViolations, launchBrowser, newContext, screenshot, webStorage } from '../../helpers/browser.js';
import { startOidcProvider, type TestOidcProvider } from '../../helpers/oidc-provider.js';
import { auditRecords } from '../../helpers/server.js';
import { apiCaller } from '../api/api-helpers.js';
import { createEnrolled, PASSWORD, totp } from '../operators/support.js';
import { asRoot, sessionCookie, signInAsOperator, startConsoleServer, type ConsoleServer } from './support.js';

describe('console: operators, SSO and quorum (real server, real Chromium, real oidc-provider)', { timeout: 400_000 }, () => {
  let s: ConsoleServer;
  let browser: Browser;
  let idp: TestOidcProvider;
  const api = apiCaller(() => ({ address: s.address, root: s.rootToken }));
  before(async () => {
    s = await startConsoleServer('keyhold-console-people-');
    browser = await launchBrowser();
    idp = await startOidcProvider({ redirectUris: [`${s.address}/v1/auth/oidc/callback`], accounts: { 'sso-alice': { groups: ['kh-ops'] }, 'sso-mallory': { groups: ['strangers'] } } });
    await asRoot(s, 'PUT', '/v1/policies/ops', { rules: [
      { path: 'keys', capabilities: ['list'] }, { path: 'keys/*', capabilities: ['read', 'create', 'rotate'] },
      { path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] },
    ] });
    await asRoot(s, 'POST', '/v1/keys', { name: 'ledger', type: 'aes256-gcm', protection: 'hsm' });
  });
  after(async () => {
    await closeBrowsers();
    await idp?.stop();
    await s?.server.stop();
  });

  it('an operator enrols TOTP on the enrolment page, then signs in with password + TOTP; a wrong code is refused', async () => {
    await asRoot(s, 'POST', '/v1/sys/operators', { name: 'olivia', password: PASSWORD });
    await asRoot(s, 'PUT', '/v1/sys/groups/ops', { policies: ['ops'], members: ['olivia'], external_groups: ['kh-ops'] });
    const page = await (await newContext(browser)).newPage();
    await page.goto(`${s.address}/ui/`);
    await page.getByRole('link', { name: 'First sign-in? Set up your authenticator' }).click();
    await page.getByLabel('Username').fill('olivia');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Show my authenticator secret' }).click();
    const qr = page.getByRole('img', { name: 'QR code of your authenticator secret' });
    await qr.waitFor();
    // The QR code is a data: image (the CSP allows only those besides the console's own) and it rendered.
    assert.match(await qr.getAttribute('src') ?? '', /^data:image\/svg\+xml;base64,/);
    assert.ok(await qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0), 'the QR code did not render');
    await page.getByText('Show the key as text').click();
    const uri = await page.locator('code.otpauth').textContent() ?? '';
    const secret = new URL(uri).searchParams.get('secret') as string;
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await expectNoAxeViolations(page, 'enrolment, QR code');
    await screenshot(page, 'enrol');
    await page.getByLabel('Code from your app').fill(await totp(secret, -1));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    assert.ok(await page.locator('ul.recovery li').count() >= 8);
    assert.deepEqual(await webStorage(page), { local: {}, session: {} }, 'the enrolment kept something in web storage');

    // A wrong code: refused with the login's one answer, no session.
    await signInAsOperator(page, s.address, 'olivia', '000000' === await totp(secret) ? '111111' : '000000');
    await page.locator('#login-error').waitFor();
    assert.match(await page.locator('#login-error').textContent() ?? '', /ERR_LOGIN_FAILED/);
    assert.equal(await sessionCookie(page), undefined);
    // The right one: signed in as the operator, with the group's policies.
    await signInAsOperator(page, s.address, 'olivia', await totp(secret));
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(await page.locator('#identity').textContent(), 'operator:olivia');
    const cookie = await sessionCookie(page);
    assert.ok(cookie?.httpOnly && cookie.secure && cookie.sameSite === 'Strict');
    await page.goto(`${s.address}/ui/#/keys`);
    await page.getByRole('link', { name: 'ledger' }).waitFor();
    const logins = auditRecords(s.dataDir).filter((e) => e.operation === 'auth.operator.login' && e.type === 'response').map((e) => e.outcome?.status);
    assert.deepEqual(logins.slice(-2), [401, 200]);
    await page.context().close();
  });

  it('single sign-on through the provider\'s own login page; the SSO button only once OIDC is configured', async () => {
    const page = await (await newContext(browser)).newPage();
    await page.goto(`${s.address}/ui/`);
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign in with SSO' }).count(), 0, 'an SSO button without OIDC configured');
    await asRoot(s, 'PUT', '/v1/auth/oidc/config', {
      issuer: idp.issuer, client_id: idp.client.client_id, client_secret: idp.client.client_secret,
      redirect_uris: [`${s.address}/v1/auth/oidc/callback`], scopes: ['openid', 'profile', 'email', 'groups'],
    });
    await page.reload();
    await page.getByRole('button', { name: 'Sign in with SSO' }).click();
    // The provider's page (another origin): its own login form.
    await page.waitForURL((u) => u.toString().startsWith(idp.issuer));
    await page.locator('input[name="login"]').fill('sso-alice');
    await page.locator('input[name="password"]').fill('anything');
    await page.getByRole('button', { name: /sign-?in/i }).click();
    await page.waitForURL((u) => u.toString().startsWith(`${s.address}/ui/`));
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.match(await page.locator('#identity').textContent() ?? '', /^oidc:/);
    const cookie = await sessionCookie(page);
    assert.ok(cookie?.httpOnly && cookie.secure && cookie.sameSite === 'Strict', 'SSO session cookie flags');
    await page.goto(`${s.address}/ui/#/keys`);
    await page.getByRole('link', { name: 'ledger' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();

    await page.context().close();

    // A person whose groups map to nothing (another browser: the provider remembers sso-alice in
    // this one): back on the login page with the reason, and no session.
    const refused = await (await newContext(browser)).newPage();
    await refused.goto(`${s.address}/ui/`);
    await refused.getByRole('button', { name: 'Sign in with SSO' }).click();
    await refused.waitForURL((u) => u.toString().startsWith(idp.issuer));
    await refused.locator('input[name="login"]').fill('sso-mallory');
    await refused.locator('input[name="password"]').fill('anything');
    await refused.getByRole('button', { name: /sign-?in/i }).click();
    await refused.waitForURL((u) => u.toString().startsWith(`${s.address}/ui/`));
    await refused.getByText(/Single sign-on failed/).waitFor();
    assert.equal(await sessionCookie(refused), undefined);
    await expectNoAxeViolations(refused, 'login page with SSO');
    await screenshot(refused, 'login-sso-refused');
    await refused.context().close();
  });

  it('a key rotation under quorum: requested in one browser, approved by two other operators in theirs, executed once', async () => {
    const people = { alice: await createEnrolled(api, 'alice'), bob: await createEnrolled(api, 'bob'), carol: await createEnrolled(api, 'carol') };
    await asRoot(s, 'PUT', '/v1/sys/groups/ops', { policies: ['ops'], members: ['olivia', 'alice', 'bob', 'carol'], external_groups: ['kh-ops'] });
    await asRoot(s, 'PUT', '/v1/sys/approvals/policies/key-rotation', { operations: ['keys.rotate'], paths: ['keys/*'], group: 'ops', required: 2 });
    const pages: Record<string, Page> = {};
    for (const name of ['alice', 'bob', 'carol'] as const) {
      pages[name] = await (await newContext(browser)).newPage();
      await signInAsOperator(pages[name] as Page, s.address, name, await totp(people[name].secret));
      await (pages[name] as Page).getByRole('button', { name: 'Sign out' }).waitFor();
    }
    const alice = pages.alice as Page;
    const bob = pages.bob as Page;
    const carol = pages.carol as Page;

    // Alice asks: the answer is 202, shown as awaiting approval with the request id and params hash.
    await alice.goto(`${s.address}/ui/#/keys/ledger`);
    await alice.getByRole('button', { name: 'Rotate key' }).click();
    await alice.getByText('Awaiting approval.').waitFor();
    const id = await alice.locator('code.approval-id').textContent() ?? '';
    assert.match(id, /^apr_[A-Za-z0-9_-]{22}$/);
    assert.equal((await asRoot(s, 'GET', '/v1/keys/ledger')).latest_version, 1, 'the rotation ran before approval');
    await expectNoAxeViolations(alice, 'key details, awaiting approval');
    await screenshot(alice, 'key-awaiting-approval');
    const hash = (await asRoot(s, 'GET', `/v1/sys/approvals/${id}`)).params_sha256 as string;

    // Alice cannot approve her own request: her inbox offers only Cancel.
    await alice.goto(`${s.address}/ui/#/approvals`);
    const own = alice.getByRole('listitem').filter({ hasText: id });
    await own.getByText('(you)').waitFor();
    assert.equal(await own.getByRole('button', { name: 'Approve' }).count(), 0);

    // Bob approves with his second factor (a new code: his login's is spent), seeing the same hash.
    await bob.goto(`${s.address}/ui/#/approvals`);
    const card = bob.getByRole('listitem').filter({ hasText: id });
    await card.getByText(hash).waitFor();
    await card.getByText('Show the exact parameters').click();
    await card.getByText('/v1/keys/ledger/rotate').waitFor();
    await expectNoAxeViolations(bob, 'approvals inbox');
    await screenshot(bob, 'approvals');
    // A wrong code first: refused, nothing counted.
    await card.getByLabel(`Authenticator code for ${id}`).fill('12345x');
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText(/Approve: /).waitFor();
    assert.equal((await asRoot(s, 'GET', `/v1/sys/approvals/${id}`)).approvals.length, 0);
    await card.getByLabel(`Authenticator code for ${id}`).fill(await totp(people.bob.secret, 1));
    await card.getByRole('button', { name: 'Approve' }).click();
    await bob.getByText(/Approved; the request is now pending/).waitFor();
    // Carol's approval completes the quorum.
    await carol.goto(`${s.address}/ui/#/approvals`);
    const carolCard = carol.getByRole('listitem').filter({ hasText: id });
    await carolCard.getByLabel(`Authenticator code for ${id}`).fill(await totp(people.carol.secret, 1));
    await carolCard.getByRole('button', { name: 'Approve' }).click();
    await carol.getByText(/Approved; the request is now approved/).waitFor();
    assert.equal((await asRoot(s, 'GET', '/v1/keys/ledger')).latest_version, 1, 'approval alone must not run it');

    // Alice executes it, once.
    await alice.getByLabel('Show').selectOption('approved');
    const ready = alice.getByRole('listitem').filter({ hasText: id });
    await ready.getByRole('button', { name: 'Execute approved request' }).click();
    await alice.getByText('Executed: the operation answered 200.').waitFor();
    assert.equal((await asRoot(s, 'GET', '/v1/keys/ledger')).latest_version, 2);
    assert.equal((await asRoot(s, 'GET', `/v1/sys/approvals/${id}`)).state, 'executed');
    await alice.getByLabel('Show').selectOption('executed');
    await alice.getByRole('listitem').filter({ hasText: id }).waitFor();
    assert.equal(await alice.getByRole('button', { name: 'Execute approved request' }).count(), 0, 'an executed request offers execution again');
    for (const p of Object.values(pages)) await p.context().close();
  });
});
