/**
 * The console's pages in a real Chromium against a real server (real SoftHSM): overview, keys
 * (create, details, rotate), secrets (a value revealed only on demand and only with `read`), the
 * audit page (verified, then broken after an attacker edits the file on disk), Kubernetes roles
 * and image policies; the keyboard alone is enough; axe-core finds nothing on any page; each page
 * is saved under docs/screenshots/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { closeBrowsers, expectNoAxeViolations, launchBrowser, newContext, screenshot } from '../../helpers/browser.js';
import { auditRecords } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { asRoot, signInWithToken, startConsoleServer, tokenWith, type ConsoleServer } from './support.js';

describe('console pages (real server, real Chromium)', { timeout: 300_000 }, () => {
  let s: ConsoleServer;
  let browser: Browser;
  let page: Page;
  before(async () => {
    s = await startConsoleServer('keyhold-console-pages-');
    browser = await launchBrowser();
    page = await (await newContext(browser)).newPage();
    await signInWithToken(page, s.address, s.rootToken);
  });
  after(async () => {
    await closeBrowsers();
    await s?.server.stop();
  });

  it('overview: seal, HSM health, audit state and this replica', async () => {
    await page.goto(`${s.address}/ui/#/overview`);
    const seal = page.getByRole('region', { name: 'Seal' });
    await seal.getByText('unsealed').waitFor();
    await page.getByRole('region', { name: 'HSM' }).getByText('answering').waitFor();
    await page.getByRole('region', { name: 'HSM' }).getByText('keyhold-dev').waitFor();
    await page.getByRole('region', { name: 'Audit log' }).getByText('yes').first().waitFor();
    await page.getByRole('region', { name: 'Replica' }).getByText('Leader').waitFor();
    assert.equal(await page.locator('#identity').textContent(), 'root');
    await expectNoAxeViolations(page, 'overview');
    await screenshot(page, 'overview');
  });

  it('keys: create a key from the form, see its details, rotate it', async () => {
    await page.goto(`${s.address}/ui/#/keys`);
    await page.getByText('No keys yet.').waitFor();
    await expectNoAxeViolations(page, 'keys, empty');
    await page.getByLabel('Key name').fill('payments');
    await page.getByLabel('Type').selectOption('aes256-gcm');
    await page.getByLabel('Protection').selectOption('hsm');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('Key payments created.').waitFor();
    const created = await asRoot(s, 'GET', '/v1/keys/payments');
    assert.equal(created.protection, 'hsm');
    assert.equal(created.latest_version, 1);
    await page.getByRole('link', { name: 'payments' }).click();
    await page.getByRole('heading', { name: 'Key payments', level: 1 }).waitFor();
    assert.equal(await page.locator('#latest-version').textContent(), '1');
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await page.getByText('Rotated: the latest version is now 2.').waitFor();
    await pollUntil('the details page shows version 2', async () => (await page.locator('#latest-version').textContent()) === '2' || undefined);
    assert.equal((await asRoot(s, 'GET', '/v1/keys/payments')).latest_version, 2);
    assert.equal(await page.getByRole('table', { name: 'Versions' }).getByRole('row').count(), 3);
    await expectNoAxeViolations(page, 'key details');
    await screenshot(page, 'key-details');
    // The rotation went through the API like any other: audited with the session's child token.
    const rotate = auditRecords(s.dataDir).filter((e) => e.operation === 'keys.rotate' && e.type === 'response').at(-1);
    assert.equal(rotate?.outcome?.status, 200);
    await page.goto(`${s.address}/ui/#/keys`);
    await page.getByRole('link', { name: 'payments' }).waitFor();
    await expectNoAxeViolations(page, 'keys');
    await screenshot(page, 'keys');
  });

  it('secrets: names for a lister, the value only on demand and only with read; a clear message when denied', async () => {
    await asRoot(s, 'PUT', '/v1/secrets/app/db', { data: { username: 'app', password: 'hunter2-very-secret' } });
    await asRoot(s, 'PUT', '/v1/secrets/app/db', { data: { username: 'app', password: 'rotated-very-secret' } });
    const lister = await tokenWith(s, 'lister', [{ path: 'secrets', capabilities: ['list'] }, { path: 'secrets/*', capabilities: ['list'] }]);
    const reader = await tokenWith(s, 'reader', [{ path: 'secrets', capabilities: ['list'] }, { path: 'secrets/*', capabilities: ['list', 'read'] }]);

    const listerPage = await (await newContext(browser)).newPage();
    await signInWithToken(listerPage, s.address, lister);
    await listerPage.goto(`${s.address}/ui/#/secrets`);
    await listerPage.getByRole('link', { name: 'app/' }).click();
    await listerPage.getByRole('link', { name: 'db' }).click();
    await listerPage.getByRole('heading', { name: 'Secret app/db', level: 1 }).waitFor();
    await listerPage.getByText(/Metadata: Permission denied/).waitFor();
    await listerPage.getByRole('button', { name: 'Reveal value' }).click();
    const denied = listerPage.locator('#reveal-error');
    await denied.waitFor();
    assert.match(await denied.textContent() ?? '', /Permission denied: read on secrets\/app\/db/);
    assert.equal(await denied.getAttribute('role'), 'alert');
    assert.ok(!(await listerPage.content()).includes('very-secret'), 'a value reached the page of a caller without read');
    await expectNoAxeViolations(listerPage, 'secret, denied');
    await screenshot(listerPage, 'secret-denied');
    await listerPage.context().close();

    const readerPage = await (await newContext(browser)).newPage();
    await signInWithToken(readerPage, s.address, reader);
    const reads = () => auditRecords(s.dataDir).filter((e) => e.operation === 'secrets.read' && e.type === 'response' && e.outcome?.status === 200).length;
    const readsBefore = reads();
    await readerPage.goto(`${s.address}/ui/#/secrets/app/db`);
    await readerPage.getByRole('table', { name: 'Versions' }).waitFor();
    assert.equal(await readerPage.getByRole('table', { name: 'Versions' }).getByRole('row').count(), 3);
    // Not fetched until asked for.
    assert.ok(!(await readerPage.content()).includes('very-secret'), 'the value was on the page before Reveal');
    assert.equal(reads(), readsBefore, 'the value was read before Reveal');
    await expectNoAxeViolations(readerPage, 'secret, hidden');
    await screenshot(readerPage, 'secret');
    await readerPage.getByRole('button', { name: 'Reveal value' }).click();
    await readerPage.getByText('rotated-very-secret').waitFor();
    assert.equal(reads(), readsBefore + 1, 'the reveal is one audited read');
    await expectNoAxeViolations(readerPage, 'secret, revealed');
    await readerPage.getByRole('button', { name: 'Hide value' }).click();
    await readerPage.getByRole('button', { name: 'Reveal value' }).waitFor();
    assert.ok(!(await readerPage.content()).includes('very-secret'), 'Hide left the value on the page');
    await readerPage.goto(`${s.address}/ui/#/secrets`);
    await readerPage.getByRole('link', { name: 'app/' }).waitFor();
    await expectNoAxeViolations(readerPage, 'secrets list');
    await screenshot(readerPage, 'secrets');
    await readerPage.context().close();
  });

  it('kubernetes: roles and their image policies', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    await asRoot(s, 'PUT', '/v1/policies/web-app', { rules: [{ path: 'secrets/web/*', capabilities: ['read'] }] });
    await asRoot(s, 'PUT', '/v1/auth/kubernetes/roles/web', {
      bound_namespaces: ['web'], bound_service_accounts: ['frontend'], policies: ['web-app'], require_pod_bound: true,
      image_policy: { allowed_digests: [`registry.example/web@${digest}`] },
    });
    await page.goto(`${s.address}/ui/#/kubernetes`);
    const role = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Role web' }) });
    await role.getByText('frontend').waitFor();
    await role.getByText(`registry.example/web@${digest}`).waitFor();
    await role.getByText('web-app').waitFor();
    await expectNoAxeViolations(page, 'kubernetes');
    await screenshot(page, 'kubernetes');
  });

  it('audit: the chain and checkpoints verify, and a record edited on disk shows the log as broken', async () => {
    // Checkpoints are signed every half second while entries arrive.
    await pollUntil('a signed checkpoint', async () => (await asRoot(s, 'GET', '/v1/sys/health')).audit.last_checkpoint, { timeoutMs: 20_000 });
    await page.goto(`${s.address}/ui/#/audit`);
    const verdict = page.locator('#audit-verdict');
    await verdict.waitFor();
    assert.match(await verdict.textContent() ?? '', /Audit chain verified: \d+ entries, [1-9]\d* signed checkpoints, anchored/);
    // The Kubernetes test's role write, the latest request: an older one (the keys test's rotation)
    // can fall out of the last 50 entries on a loaded machine, where more checkpoints come between.
    await page.getByRole('table', { name: /The last \d+ entries/ }).getByText('auth.kubernetes.write-role').first().waitFor();
    await expectNoAxeViolations(page, 'audit, verified');
    await screenshot(page, 'audit', false);

    // The attacker: hide that app/db was read, by editing that record in place (same length, so
    // the running server's size checks see nothing), as anyone with write access to the file could.
    const file = path.join(s.dataDir, 'audit.log');
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.split('\n');
    const index = lines.findIndex((l) => l.includes('"operation":"secrets.read"') && l.includes('"type":"response"'));
    assert.ok(index >= 0, 'no secrets.read record to tamper with');
    const forged = (lines[index] as string).replace('"operation":"secrets.read"', '"operation":"secrets.list"');
    const offset = Buffer.byteLength(lines.slice(0, index).join('\n')) + (index > 0 ? 1 : 0);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, forged, offset, 'utf8');
    fs.closeSync(fd);
    const seq = (JSON.parse(forged) as { seq: number }).seq;

    await page.getByRole('button', { name: 'Verify again' }).click();
    await page.getByText('Audit chain BROKEN').waitFor();
    const broken = await verdict.textContent() ?? '';
    assert.match(broken, new RegExp(`BROKEN at entry ${seq} \\(line ${index + 1} of audit\\.log\\)`), broken);
    assert.equal(await verdict.getAttribute('role'), 'alert');
    await expectNoAxeViolations(page, 'audit, broken');
    await screenshot(page, 'audit-broken', false);
  });

  it('is usable from the keyboard alone, with a visible focus', async () => {
    const context = await newContext(browser);
    const kb = await context.newPage();
    await kb.goto(`${s.address}/ui/`);
    await kb.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    const focused = () => kb.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      const style = el ? getComputedStyle(el) : undefined;
      return { tag: el?.tagName, name: el?.getAttribute('name') ?? el?.textContent?.trim(), outline: style ? `${style.outlineStyle} ${style.outlineWidth}` : '' };
    });
    // Username has focus on load; Tab walks password, code, Sign in, the enrolment link, then the bootstrap summary.
    assert.equal((await focused()).name, 'username');
    const order: Array<string | undefined> = [];
    for (let i = 0; i < 5; i++) {
      await kb.keyboard.press('Tab');
      const f = await focused();
      order.push(f.name);
      assert.match(f.outline, /^(solid|auto) [1-9]/, `no visible focus on ${f.name}: ${f.outline}`);
    }
    assert.deepEqual(order, ['password', 'code', 'Sign in', 'First sign-in? Set up your authenticator', 'Bootstrap: sign in with a token']);
    await kb.keyboard.press('Enter');
    await kb.keyboard.press('Tab');
    assert.equal((await focused()).name, 'token');
    await kb.keyboard.type(s.rootToken);
    await kb.keyboard.press('Enter');
    await kb.getByRole('button', { name: 'Sign out' }).waitFor();
    // Signed in, focus is on the page's heading.
    await pollUntil('focus on the overview heading', async () => (await focused()).name === 'Overview' || undefined, { timeoutMs: 3000 });
    // A fresh load: the skip link first, then the navigation; Enter on a link changes page and focuses its heading.
    await kb.reload();
    await kb.getByRole('button', { name: 'Sign out' }).waitFor();
    await kb.keyboard.press('Tab');
    assert.equal((await focused()).name, 'Skip to content');
    await kb.keyboard.press('Tab');
    await kb.keyboard.press('Tab');
    assert.equal((await focused()).name, 'Keys');
    await kb.keyboard.press('Enter');
    await kb.getByRole('heading', { name: 'Keys', level: 1 }).waitFor();
    await pollUntil('focus on the page heading', async () => (await focused()).tag === 'H1' || undefined, { timeoutMs: 3000 });
    await context.close();
  });
});
