/**
 * The administration pages (operators, groups, policies, approval policies) in a real Chromium
 * against a real server (real SoftHSM): an administrator builds access from nothing and the new
 * operator gets exactly it; bad policy documents store nothing; deletion needs a typed
 * confirmation; protected changes answer 202 with the approval request on the page; a person
 * without the policies gets a clear 403 with its code everywhere and changes nothing; a reset
 * clears the second factor and the lock. axe-core on every page; screenshots in docs/screenshots.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { closeBrowsers, expectNoAxeViolations, launchBrowser, newContext, screenshot } from '../../helpers/browser.js';
import { auditRecords, call } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { apiCaller } from '../api/api-helpers.js';
import { createEnrolled, enrol, login, PASSWORD, totp } from '../operators/support.js';
import { asRoot, signInAsOperator, signInWithToken, startConsoleServer, tokenWith, type ConsoleServer } from './support.js';

const APP_READER = { rules: [{ path: 'secrets', capabilities: ['list'] }, { path: 'secrets/app/*', capabilities: ['read', 'list'] }] };

describe('console administration pages (real server, real Chromium)', { timeout: 600_000 }, () => {
  let s: ConsoleServer;
  let browser: Browser;
  let root: Page;
  const api = apiCaller(() => ({ address: s.address, root: s.rootToken }));
  /** A root GET's status, for records that must (not) exist. */
  const statusOf = async (path: string) => (await call(s.address, 'GET', path, s.rootToken)).status;
  const alert = (page: Page) => page.getByRole('alert');

  before(async () => {
    s = await startConsoleServer('keyhold-console-admin-');
    browser = await launchBrowser();
    root = await (await newContext(browser)).newPage();
    await signInWithToken(root, s.address, s.rootToken);
    await asRoot(s, 'PUT', '/v1/secrets/app/db', { data: { password: 'app-db-very-secret' } });
  });
  after(async () => {
    await closeBrowsers();
    await s?.server.stop();
  });

  async function operatorPage(name: string, secret: string, offset = 0): Promise<Page> {
    const page = await (await newContext(browser)).newPage();
    await signInAsOperator(page, s.address, name, await totp(secret, offset));
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(await page.locator('#identity').textContent(), `operator:${name}`);
    return page;
  }

  it('an administrator creates a policy, an operator and a group mapping it to the policy; the operator enrols, signs in and gets exactly what the policy allows', async () => {
    // The policy, from its JSON document.
    await root.goto(`${s.address}/ui/#/policies`);
    await root.getByRole('heading', { name: 'Create a policy' }).waitFor();
    await expectNoAxeViolations(root, 'policies');
    await root.getByLabel('Policy name').fill('app-reader');
    await root.getByLabel('Rules (JSON)').fill(JSON.stringify(APP_READER, null, 2));
    await root.getByRole('button', { name: 'Create policy' }).click();
    await root.getByText('Policy app-reader saved.').waitFor();
    assert.deepEqual(await asRoot(s, 'GET', '/v1/policies/app-reader'), { name: 'app-reader', ...APP_READER });
    await root.getByRole('link', { name: 'app-reader' }).waitFor();
    await screenshot(root, 'policies');
    await root.getByRole('link', { name: 'app-reader' }).click();
    await root.getByRole('heading', { name: 'Policy app-reader', level: 1 }).waitFor();
    const rules = root.getByRole('table', { name: 'Rules' });
    await rules.getByText('secrets/app/*').waitFor();
    assert.equal(await rules.getByRole('row').count(), 3);
    assert.deepEqual(JSON.parse(await root.getByLabel('Rules (JSON)').inputValue()), APP_READER);
    await expectNoAxeViolations(root, 'policy');
    await screenshot(root, 'policy');

    // The account: the administrator types the initial password; it is sent once and never shown.
    await root.goto(`${s.address}/ui/#/operators`);
    await root.getByText('No operator accounts yet.').waitFor();
    await root.getByLabel('Username').fill('dana');
    await root.getByLabel('Initial password').fill(PASSWORD);
    await root.getByRole('button', { name: 'Create account' }).click();
    await root.getByText('Account dana created.', { exact: false }).waitFor();
    assert.equal(await root.getByLabel('Initial password').inputValue(), '', 'the password stayed in the form');
    assert.ok(!(await root.content()).includes(PASSWORD), 'the password is on the page');
    const dana = await asRoot(s, 'GET', '/v1/sys/operators/dana');
    assert.equal(dana.enrolled, false);
    const row = root.getByRole('row').filter({ has: root.getByRole('link', { name: 'dana', exact: true }) });
    await row.getByText('not enrolled').waitFor();

    // The group: the policy, the member, and an SSO group whose name holds a comma (one per line).
    await root.goto(`${s.address}/ui/#/groups`);
    await root.getByLabel('Group name').fill('readers');
    await root.getByLabel('Policies', { exact: true }).fill('app-reader');
    await root.getByLabel('Members', { exact: true }).fill('dana');
    await root.getByLabel('External (SSO) groups').fill('cn=Readers,ou=Groups\n');
    await root.getByRole('button', { name: 'Create group' }).click();
    await root.getByText('Group readers saved.').waitFor();
    assert.deepEqual(await asRoot(s, 'GET', '/v1/sys/groups/readers'), { name: 'readers', policies: ['app-reader'], members: ['dana'], external_groups: ['cn=Readers,ou=Groups'] });
    await root.getByRole('link', { name: 'readers' }).waitFor();
    await expectNoAxeViolations(root, 'groups');
    await screenshot(root, 'groups');
    await root.getByRole('link', { name: 'readers' }).click();
    await root.getByRole('heading', { name: 'Group readers', level: 1 }).waitFor();
    await root.getByText('cn=Readers,ou=Groups').first().waitFor();
    await root.getByRole('link', { name: 'app-reader' }).waitFor();
    await expectNoAxeViolations(root, 'group');
    await screenshot(root, 'group');

    // Dana sets up the authenticator; the list says so.
    const enrolled = await enrol(api, 'dana');
    await root.goto(`${s.address}/ui/#/operators`);
    await root.getByRole('row').filter({ has: root.getByRole('link', { name: 'dana', exact: true }) }).getByText('enrolled', { exact: true }).waitFor();
    await expectNoAxeViolations(root, 'operators');
    await screenshot(root, 'operators');
    await root.getByRole('link', { name: 'dana', exact: true }).click();
    await root.getByRole('heading', { name: 'Operator dana', level: 1 }).waitFor();
    await root.getByText('not locked').waitFor();
    await expectNoAxeViolations(root, 'operator');
    await screenshot(root, 'operator');

    // Dana: the secret the policy allows, and a clear refusal of what it does not.
    const page = await operatorPage('dana', enrolled.secret);
    await page.goto(`${s.address}/ui/#/secrets/app/db`);
    await page.getByRole('button', { name: 'Reveal value' }).click();
    await page.getByText('app-db-very-secret').waitFor();
    await page.goto(`${s.address}/ui/#/keys`);
    assert.match(await alert(page).textContent() ?? '', /Permission denied: list on keys \(ERR_PERMISSION_DENIED\)/);
    await page.goto(`${s.address}/ui/#/policies`);
    assert.match(await alert(page).textContent() ?? '', /Permission denied: list on sys\/policies \(ERR_PERMISSION_DENIED\)/);
    await page.context().close();
  });

  it('bad policy JSON: a syntax error is shown and nothing is sent; the server\'s validation errors are shown verbatim with their code; nothing is stored', async () => {
    const writes = () => auditRecords(s.dataDir).filter((e) => e.operation === 'policies.write' && e.type === 'request').length;
    const sentBefore = writes();
    await root.goto(`${s.address}/ui/#/policies`);
    await root.getByLabel('Policy name').fill('broken');
    const json = root.getByLabel('Rules (JSON)');
    await json.fill('{"rules": [{"path": "secrets/*", "capabilities": ["read"]}');
    await root.getByRole('button', { name: 'Create policy' }).click();
    const syntax = root.locator('#policy-json-error');
    await syntax.waitFor();
    assert.match(await syntax.textContent() ?? '', /^Not valid JSON: .+\. Nothing was saved\.$/);
    assert.equal(await json.getAttribute('aria-invalid'), 'true');
    assert.match(await json.getAttribute('aria-describedby') ?? '', /policy-json-error/);
    await expectNoAxeViolations(root, 'policy, JSON syntax error');
    await screenshot(root, 'policy-invalid');
    assert.equal(writes(), sentBefore, 'a document that is not JSON was sent');
    // Typing again clears the stale error.
    await json.fill('{}');
    await syntax.waitFor({ state: 'detached' });

    // Valid JSON the server refuses: its message and code, as the API gives them.
    const refused: Array<[unknown, string]> = [
      [{ rules: [{ path: 'secrets/*/db', capabilities: ['read'] }] }, 'ERR_POLICY_INVALID'],
      [{ rules: [{ path: 'secrets/app', capabilities: ['reed'] }] }, 'ERR_POLICY_INVALID'],
      [{ rules: [{ path: 'secrets/../sys', capabilities: ['read'] }] }, 'ERR_POLICY_INVALID'],
      [{ rules: [], grant: 'root' }, 'ERR_BAD_REQUEST'],
      [[], 'ERR_BAD_REQUEST'],
    ];
    for (const [doc, code] of refused) {
      const direct = await call(s.address, 'PUT', '/v1/policies/broken', s.rootToken, doc);
      assert.equal(direct.status, 400, direct.text);
      assert.equal(direct.body.error.code, code);
      await json.fill(JSON.stringify(doc));
      await root.getByRole('button', { name: 'Create policy' }).click();
      const expected = `${direct.body.error.message as string} (${code})`;
      const shown = root.getByRole('alert').filter({ hasText: expected });
      await shown.waitFor();
      assert.equal(await shown.textContent(), expected);
      assert.equal(await statusOf('/v1/policies/broken'), 404, `${JSON.stringify(doc)} was stored`);
    }

    // Editing an existing policy into bad JSON, or into an invalid one, leaves it as it was.
    await root.goto(`${s.address}/ui/#/policies/app-reader`);
    const edit = root.getByLabel('Rules (JSON)');
    await edit.fill('{"rules": [}');
    await root.getByRole('button', { name: 'Save policy' }).click();
    await root.locator('#policy-json-error').waitFor();
    await edit.fill('{"rules": [{"path": "", "capabilities": ["read"]}]}');
    await root.getByRole('button', { name: 'Save policy' }).click();
    await root.getByRole('alert').filter({ hasText: /ERR_(POLICY_INVALID|BAD_REQUEST)/ }).waitFor();
    assert.deepEqual(await asRoot(s, 'GET', '/v1/policies/app-reader'), { name: 'app-reader', ...APP_READER });

    // A careless create with an existing name does not replace the policy.
    await root.goto(`${s.address}/ui/#/policies`);
    await root.getByLabel('Policy name').fill('app-reader');
    await root.getByLabel('Rules (JSON)').fill('{"rules": [{"path": "*", "capabilities": ["read"]}]}');
    await root.getByRole('button', { name: 'Create policy' }).click();
    await root.getByText(/A policy named app-reader already exists/).waitFor();
    assert.deepEqual(await asRoot(s, 'GET', '/v1/policies/app-reader'), { name: 'app-reader', ...APP_READER });
  });

  it('deleting needs the name typed: Cancel and Escape delete nothing, a near miss cannot confirm; then it deletes, also from the keyboard alone', async () => {
    await asRoot(s, 'PUT', '/v1/policies/temp-policy', { rules: [{ path: 'keys/temp', capabilities: ['read'] }] });
    await asRoot(s, 'PUT', '/v1/sys/groups/temp-group', { policies: ['temp-policy'], members: [], external_groups: [] });
    await asRoot(s, 'POST', '/v1/sys/operators', { name: 'temp-op', password: PASSWORD });
    await asRoot(s, 'PUT', '/v1/policies/temp-keyboard', { rules: [{ path: 'keys/kb', capabilities: ['read'] }] });
    // From one record's page to another's (a hash change, the same components): no form keeps the first record's text.
    await root.goto(`${s.address}/ui/#/policies/temp-policy`);
    await root.getByLabel('Rules (JSON)').fill('typed for temp-policy, not saved');
    await root.goto(`${s.address}/ui/#/policies/temp-keyboard`);
    await root.getByRole('table', { name: 'Rules' }).getByText('keys/kb').waitFor();
    assert.deepEqual(JSON.parse(await root.getByLabel('Rules (JSON)').inputValue()), { rules: [{ path: 'keys/kb', capabilities: ['read'] }] });

    const cases: Array<[string, string, string, string]> = [
      ['policies', 'policy', 'temp-policy', '/v1/policies/temp-policy'],
      ['groups', 'group', 'temp-group', '/v1/sys/groups/temp-group'],
      ['operators', 'operator account', 'temp-op', '/v1/sys/operators/temp-op'],
    ];
    for (const [section, what, name, url] of cases) {
      await root.goto(`${s.address}/ui/#/${section}/${name}`);
      const open = root.getByRole('button', { name: `Delete ${what}…` });
      const confirm = root.getByRole('form', { name: `Confirm deletion of ${what} ${name}` });
      const field = confirm.getByLabel(`Name of the ${what} to delete`);
      const yes = confirm.getByRole('button', { name: `Delete ${name}` });
      // Cancel.
      await open.click();
      await field.fill(name);
      if (what === 'policy') {
        await expectNoAxeViolations(root, 'delete confirmation');
        await screenshot(root, 'delete-confirm');
      }
      await confirm.getByRole('button', { name: 'Cancel' }).click();
      await confirm.waitFor({ state: 'detached' });
      // Escape.
      await open.click();
      await field.fill(name);
      await field.press('Escape');
      await confirm.waitFor({ state: 'detached' });
      // A near miss: the button stays disabled, and Enter does nothing.
      await open.click();
      await field.fill(name.slice(0, -1));
      assert.equal(await yes.isDisabled(), true);
      await field.press('Enter');
      assert.equal(await confirm.count(), 1);
      assert.equal(await statusOf(url), 200, `${what} ${name} was deleted without a confirmation`);
      // Confirmed.
      await field.fill(name);
      await yes.click();
      await root.getByText(`The ${what} ${name} was deleted.`).waitFor();
      assert.equal(await statusOf(url), 404, `${what} ${name} is still there`);
      assert.equal(await root.getByRole('button', { name: `Delete ${what}…` }).count(), 0, 'a deleted record still offers deletion');
    }

    // The keyboard alone: focus moves into the confirmation and back to its button.
    await root.goto(`${s.address}/ui/#/policies/temp-keyboard`);
    const open = root.getByRole('button', { name: 'Delete policy…' });
    await open.focus();
    const focusedLabel = () => root.evaluate(() => (document.activeElement as HTMLInputElement | null)?.labels?.[0]?.textContent ?? document.activeElement?.textContent);
    const focusOn = (label: string) => pollUntil(`focus on ${label}`, async () => (await focusedLabel()) === label || undefined, { timeoutMs: 3000 });
    await root.keyboard.press('Enter');
    await focusOn('Name of the policy to delete');
    await root.keyboard.press('Escape');
    await focusOn('Delete policy…');
    await root.keyboard.press('Enter');
    await focusOn('Name of the policy to delete');
    await root.keyboard.type('temp-keyboard');
    await root.keyboard.press('Enter');
    await root.getByText('The policy temp-keyboard was deleted.').waitFor();
    assert.equal(await statusOf('/v1/policies/temp-keyboard'), 404);
  });

  it('changes protected by an approval policy answer 202: the page shows the request, nothing changes until it is approved and executed', async () => {
    await asRoot(s, 'PUT', '/v1/policies/admin', { rules: [
      { path: 'sys/groups', capabilities: ['list'] }, { path: 'sys/groups/*', capabilities: ['read', 'update', 'delete'] },
      { path: 'sys/approvals/policies', capabilities: ['list'] }, { path: 'sys/approvals/policies/*', capabilities: ['read', 'update', 'delete'] },
      { path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] },
    ] });
    await asRoot(s, 'PUT', '/v1/policies/team-reader', { rules: [{ path: 'secrets/team/*', capabilities: ['read'] }] });
    const ada = await createEnrolled(api, 'ada');
    const bob = await createEnrolled(api, 'bob');
    await asRoot(s, 'PUT', '/v1/sys/groups/admins', { policies: ['admin', 'team-reader'], members: ['ada', 'bob'], external_groups: [] });
    await asRoot(s, 'PUT', '/v1/sys/groups/team', { policies: ['team-reader'], members: [], external_groups: [] });
    await asRoot(s, 'PUT', '/v1/sys/approvals/policies/team-changes', { operations: ['group-changes'], paths: ['sys/groups/team'], group: 'admins', required: 1 });
    const page = await operatorPage('ada', ada.secret);

    // A group change: 202, the request on the page, the group as it was.
    await page.goto(`${s.address}/ui/#/groups/team`);
    await page.getByLabel('Members', { exact: true }).fill('bob');
    await page.getByRole('button', { name: 'Save group' }).click();
    await page.getByText('Awaiting approval.').waitFor();
    const id = await page.locator('code.approval-id').textContent() ?? '';
    assert.match(id, /^apr_[A-Za-z0-9_-]{22}$/);
    assert.equal(await page.getByText('Group team saved.').count(), 0);
    assert.deepEqual((await asRoot(s, 'GET', '/v1/sys/groups/team')).members, []);
    const request = await asRoot(s, 'GET', `/v1/sys/approvals/${id}`);
    assert.equal(request.state, 'pending');
    assert.equal(request.operation, 'sys.groups.write');
    assert.equal(request.requester, 'operator:ada');
    assert.deepEqual(request.body, { policies: ['team-reader'], members: ['bob'], external_groups: [] });
    await expectNoAxeViolations(page, 'group, awaiting approval');
    await screenshot(page, 'group-awaiting-approval');

    // Bob approves; Ada executes it from the inbox; only then is the group changed, as typed.
    const bobLogin = await login(api, { username: 'bob', password: PASSWORD, totp: await totp(bob.secret) });
    assert.equal(bobLogin.status, 200, bobLogin.text);
    const approved = await api.call(bobLogin.body.token as string, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: request.params_sha256, code: await totp(bob.secret, 1) });
    assert.equal(approved.status, 200, approved.text);
    await page.goto(`${s.address}/ui/#/approvals`);
    await page.getByLabel('Show').selectOption('approved');
    await page.getByRole('listitem').filter({ hasText: id }).getByRole('button', { name: 'Execute approved request' }).click();
    await page.getByText('Executed: the operation answered 200.').waitFor();
    assert.deepEqual((await asRoot(s, 'GET', '/v1/sys/groups/team')).members, ['bob']);

    // A new approval policy is created at once; changing it afterwards needs its own quorum.
    await page.goto(`${s.address}/ui/#/approval-policies`);
    await page.getByRole('link', { name: 'team-changes' }).waitFor();
    await page.getByLabel('Approval policy name').fill('key-guard');
    await page.getByLabel('Operations').fill('key-rotate\nkeys.delete');
    await page.getByLabel('Paths').fill('keys/prod-*');
    await page.getByLabel('Approving group').fill('admins');
    await page.getByLabel('Approvals required').fill('2');
    await page.getByRole('button', { name: 'Create approval policy' }).click();
    await page.getByText('Approval policy key-guard saved.').waitFor();
    const guard = await asRoot(s, 'GET', '/v1/sys/approvals/policies/key-guard');
    assert.deepEqual({ ...guard, updated_at: undefined }, { name: 'key-guard', operations: ['key-rotate', 'keys.delete'], paths: ['keys/prod-*'], group: 'admins', required: 2, updated_at: undefined });
    await page.getByRole('link', { name: 'key-guard' }).waitFor();
    await expectNoAxeViolations(page, 'approval policies');
    await screenshot(page, 'approval-policies');
    // An unknown operation: the server's refusal and code, nothing stored.
    await page.getByLabel('Approval policy name').fill('typo');
    await page.getByLabel('Operations').fill('keys.rotat');
    await page.getByRole('button', { name: 'Create approval policy' }).click();
    await page.getByRole('alert').filter({ hasText: 'ERR_APPROVAL_POLICY_INVALID' }).waitFor();
    assert.equal(await statusOf('/v1/sys/approvals/policies/typo'), 404);

    await page.getByRole('link', { name: 'key-guard' }).click();
    await page.getByRole('heading', { name: 'Approval policy key-guard', level: 1 }).waitFor();
    await page.getByLabel('Approvals required').fill('1');
    await page.getByRole('button', { name: 'Save approval policy' }).click();
    await page.getByText('Awaiting approval.').waitFor();
    assert.equal((await asRoot(s, 'GET', '/v1/sys/approvals/policies/key-guard')).required, 2);
    await expectNoAxeViolations(page, 'approval policy');
    await screenshot(page, 'approval-policy');

    // Deleting one: Cancel deletes nothing; confirmed, it is a request too, and the policy stays.
    await page.goto(`${s.address}/ui/#/approval-policies/team-changes`);
    await page.getByRole('button', { name: 'Delete approval policy…' }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    const requests = async () => (await asRoot(s, 'GET', '/v1/sys/approvals?state=pending')).approvals as Array<{ id: string; operation: string; path: string }>;
    assert.equal((await requests()).filter((r) => r.operation === 'approvals.policies.delete').length, 0);
    await page.getByRole('button', { name: 'Delete approval policy…' }).click();
    await page.getByLabel('Name of the approval policy to delete').fill('team-changes');
    await page.getByRole('button', { name: 'Delete team-changes' }).click();
    await page.getByText('Awaiting approval.').waitFor();
    const deleteId = await page.locator('code.approval-id').textContent();
    assert.equal(await page.getByText(/was deleted/).count(), 0);
    assert.equal(await statusOf('/v1/sys/approvals/policies/team-changes'), 200);
    assert.deepEqual((await requests()).filter((r) => r.operation === 'approvals.policies.delete').map((r) => [r.id, r.path]), [[deleteId, 'sys/approvals/policies/team-changes']]);
    await page.context().close();

    // The root token's session is no person: it cannot even ask, and the page says why, with the code.
    await root.goto(`${s.address}/ui/#/approval-policies/team-changes`);
    await root.getByRole('button', { name: 'Delete approval policy…' }).click();
    await root.getByLabel('Name of the approval policy to delete').fill('team-changes');
    await root.getByRole('button', { name: 'Delete team-changes' }).click();
    const notPerson = root.getByRole('alert').filter({ hasText: 'ERR_APPROVAL_NOT_PERSON' });
    await notPerson.waitFor();
    assert.match(await notPerson.textContent() ?? '', /^Not allowed: .+ \(ERR_APPROVAL_NOT_PERSON\)$/);
    assert.equal(await statusOf('/v1/sys/approvals/policies/team-changes'), 200);
  });

  it('a person without the policies: every administration page says not allowed with the code, and nothing on the server changes', async () => {
    await asRoot(s, 'PUT', '/v1/policies/viewer', { rules: [{ path: 'keys', capabilities: ['list'] }] });
    const nora = await createEnrolled(api, 'nora');
    await asRoot(s, 'PUT', '/v1/sys/groups/viewers', { policies: ['viewer'], members: ['nora'], external_groups: [] });
    const state = async () => {
      const read = async (list: string, key: string, item: (n: string) => string) => {
        const names = (await asRoot(s, 'GET', list))[key] as string[];
        return Promise.all(names.map(async (n) => [n, await asRoot(s, 'GET', item(n))]));
      };
      return {
        operators: await read('/v1/sys/operators', 'operators', (n) => `/v1/sys/operators/${n}`),
        groups: await read('/v1/sys/groups', 'groups', (n) => `/v1/sys/groups/${n}`),
        policies: await read('/v1/policies', 'policies', (n) => `/v1/policies/${n}`),
        approvalPolicies: await read('/v1/sys/approvals/policies', 'policies', (n) => `/v1/sys/approvals/policies/${n}`),
      };
    };
    // Taken once everything is set up and Nora has signed in (her login is recorded on her account).
    const editor = await tokenWith(s, 'group-editor', [{ path: 'sys/groups', capabilities: ['list'] }, { path: 'sys/groups/*', capabilities: ['read', 'update'] }]);
    const page = await operatorPage('nora', nora.secret);
    const unchanged = await state();
    const denied = async (text: string | RegExp) => {
      const message = page.getByRole('alert').filter({ hasText: text });
      await message.waitFor();
      assert.match(await message.textContent() ?? '', /^Permission denied: .+ \(ERR_PERMISSION_DENIED\)$/);
    };

    // Each list page refuses with the code, and so does each create (her own policy, the admins group: escalation attempts).
    await page.goto(`${s.address}/ui/#/operators`);
    await denied('list on sys/operators');
    await expectNoAxeViolations(page, 'operators, denied');
    await screenshot(page, 'admin-denied');
    await page.getByLabel('Username').fill('mallory');
    await page.getByLabel('Initial password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await denied('create on sys/operators/mallory');

    await page.goto(`${s.address}/ui/#/groups`);
    await denied('list on sys/groups');
    await page.getByLabel('Group name').fill('admins');
    await page.getByLabel('Policies', { exact: true }).fill('admin');
    await page.getByLabel('Members', { exact: true }).fill('nora');
    await page.getByRole('button', { name: 'Create group' }).click();
    await denied('update on sys/groups/admins');

    await page.goto(`${s.address}/ui/#/policies`);
    await denied('list on sys/policies');
    await page.getByLabel('Policy name').fill('viewer');
    await page.getByLabel('Rules (JSON)').fill('{"rules": [{"path": "*", "capabilities": ["read", "update"]}]}');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await denied('update on sys/policies/viewer');

    await page.goto(`${s.address}/ui/#/approval-policies`);
    await denied('list on sys/approvals/policies');
    await expectNoAxeViolations(page, 'approval policies, denied');
    await page.getByLabel('Approval policy name').fill('team-changes');
    await page.getByLabel('Operations').fill('keys.rotate');
    await page.getByLabel('Paths').fill('keys/x');
    await page.getByLabel('Approving group').fill('viewers');
    await page.getByRole('button', { name: 'Create approval policy' }).click();
    await denied('update on sys/approvals/policies/team-changes');

    // A record's page: the read refused, and no edit or delete offered, saying why.
    const records: Array<[string, string, string]> = [
      ['operators/ada', 'sys/operators/ada', 'operator account'], ['groups/admins', 'sys/groups/admins', 'group'],
      ['policies/admin', 'sys/policies/admin', 'policy'], ['approval-policies/key-guard', 'sys/approvals/policies/key-guard', 'approval policy'],
    ];
    for (const [hash, path, what] of records) {
      await page.goto(`${s.address}/ui/#/${hash}`);
      await denied(`read on ${path}`);
      await page.getByText(`Not allowed: your policies do not give delete on ${path}.`).waitFor();
      assert.equal(await page.getByRole('button', { name: `Delete ${what}…` }).count(), 0);
      await expectNoAxeViolations(page, `${what}, denied`);
    }
    await page.context().close();

    // Allowed to write groups, but not holding the policy: the conferral rule's refusal, shown.
    const editorPage = await (await newContext(browser)).newPage();
    await signInWithToken(editorPage, s.address, editor);
    await editorPage.goto(`${s.address}/ui/#/groups`);
    await editorPage.getByRole('link', { name: 'viewers' }).waitFor();
    await editorPage.getByLabel('Group name').fill('escalate');
    await editorPage.getByLabel('Policies', { exact: true }).fill('admin');
    await editorPage.getByRole('button', { name: 'Create group' }).click();
    const conferral = editorPage.getByRole('alert').filter({ hasText: 'ERR_PERMISSION_DENIED' });
    await conferral.waitFor();
    assert.equal(await conferral.textContent(), 'Permission denied: cannot confer policies the caller does not hold: admin (ERR_PERMISSION_DENIED)');
    // Its group pages offer editing (update) but say why deletion is not offered.
    await editorPage.goto(`${s.address}/ui/#/groups/viewers`);
    await editorPage.getByRole('button', { name: 'Save group' }).waitFor();
    await editorPage.getByText('Not allowed: your policies do not give delete on sys/groups/viewers.').waitFor();
    await editorPage.context().close();

    assert.deepEqual(await state(), unchanged, 'the server state changed');
  });

  it('a reset: the lock and the second factor are cleared, the person must enrol again, and their sessions end', async () => {
    const lee = await createEnrolled(api, 'lee');
    await asRoot(s, 'PUT', '/v1/sys/groups/lee-team', { policies: ['viewer'], members: ['lee'], external_groups: [] });
    const session = await login(api, { username: 'lee', password: PASSWORD, totp: await totp(lee.secret) });
    assert.equal(session.status, 200, session.text);
    for (let i = 0; i < 5; i++) assert.equal((await login(api, { username: 'lee', password: 'wrong password', totp: '000000' })).status, 401);
    const lockedView = await asRoot(s, 'GET', '/v1/sys/operators/lee');
    assert.ok(lockedView.locked_until && Date.parse(lockedView.locked_until as string) > Date.now(), JSON.stringify(lockedView));

    await root.goto(`${s.address}/ui/#/operators`);
    const row = root.getByRole('row').filter({ has: root.getByRole('link', { name: 'lee', exact: true }) });
    await row.getByText(/^locked until /).waitFor();
    await root.getByRole('link', { name: 'lee', exact: true }).click();
    await root.getByRole('heading', { name: 'Operator lee', level: 1 }).waitFor();
    await root.getByText(/^locked until /).waitFor();
    assert.equal(await root.locator('dd').filter({ hasText: /^5$/ }).count(), 1, 'the failures are not shown');
    await root.getByLabel('New password').fill('another long passphrase');
    await root.getByRole('button', { name: 'Reset account' }).click();
    await root.getByText('Account lee reset: it must set up its authenticator again before signing in.').waitFor();
    assert.equal(await root.getByLabel('New password').inputValue(), '');
    await root.getByText('not enrolled').waitFor();
    await root.getByText('not locked').waitFor();
    const cleared = await asRoot(s, 'GET', '/v1/sys/operators/lee');
    assert.equal(cleared.enrolled, false);
    assert.equal(cleared.failures, 0);
    assert.equal(cleared.locked_until, undefined);
    assert.equal((await call(s.address, 'GET', '/v1/auth/session', session.body.token as string)).status, 401, 'the reset left a live token');
    // The new password works for enrolment only; the old one not at all.
    assert.equal((await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'lee', password: PASSWORD })).status, 401);
    assert.equal((await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'lee', password: 'another long passphrase' })).status, 200);
  });
});
