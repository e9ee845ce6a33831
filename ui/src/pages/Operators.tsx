/**
 * Operator accounts: the list with each account's enrolment and lock state, creation with the
 * initial password the administrator types (sent once, never shown again), a reset (a new
 * password; the person enrols again, live sessions end) and deletion.
 */
import { useState } from 'preact/hooks';
import { api, encodePath, get } from '../api';
import { EditSection, RecordPage, ShowOutcome, useChange } from '../admin';
import { Badge, Facts, Field, Loading, Message, useLoad, when } from '../components';

interface Operator {
  name: string; created_at: string; password_changed_at: string; enrolled: boolean; recovery_codes_left: number; failures: number;
  locked_until?: string; last_login_at?: string; revoked_tokens?: number;
}

const url = (name: string) => `/v1/sys/operators/${encodePath(name)}`;
const locked = (o: Operator) => o.locked_until !== undefined && Date.parse(o.locked_until) > Date.now();
const Enrolment = ({ o }: { o: Operator }) => <Badge ok={o.enrolled} yes="enrolled" no="not enrolled" />;
const Lock = ({ o }: { o: Operator }) => (locked(o) ? <Badge ok={false} yes="" no={`locked until ${when(o.locked_until)}`} /> : <>not locked</>);

function Row({ name }: { name: string }) {
  const o = useLoad(() => get<Operator>(url(name)), [name]);
  return (
    <tr>
      <th scope="row"><a href={`#/operators/${encodeURIComponent(name)}`}>{name}</a></th>
      {o.data ? <><td><Enrolment o={o.data} /></td><td><Lock o={o.data} /></td><td>{when(o.data.last_login_at)}</td></> : <td colSpan={3}>{o.error ?? '…'}</td>}
    </tr>
  );
}

/** A password field and its button: creating and resetting both set one, which the server never shows back. */
function PasswordForm({ label, button, name, onName, send }: { label: string; button: string; name?: string; onName?: (v: string) => void; send: (password: string) => Promise<void> }) {
  const [password, setPassword] = useState('');
  return (
    <form onSubmit={(e) => { e.preventDefault(); void send(password).finally(() => setPassword('')); }}>
      {onName && <Field label="Username" name="new-username" value={name ?? ''} onInput={onName} required pattern="[a-z][a-z0-9._\-]{1,62}" hint="Lower-case; starts with a letter." />}
      <Field label={label} name="new-password" type="password" value={password} onInput={setPassword} autocomplete="new-password" required
        hint="Give it to the person by a separate channel: it is not shown again. They set up their authenticator with it (First sign-in) before they can sign in." />
      <button type="submit">{button}</button>
    </form>
  );
}

export function OperatorList() {
  const list = useLoad(() => get<{ operators: string[] }>('/v1/sys/operators'));
  const [name, setName] = useState('');
  const change = useChange();
  const names = list.data?.operators;
  return (
    <div>
      <section aria-labelledby="list-h">
        <h2 id="list-h">All operator accounts</h2>
        {list.error && <Message kind="error">{list.error}</Message>}
        {!list.data && !list.error && <Loading what="operator accounts" />}
        {names && (names.length === 0 ? <p>No operator accounts yet.</p> : (
          <table>
            <caption>Operator accounts, their enrolment and lock state</caption>
            <thead><tr><th scope="col">Username</th><th scope="col">Authenticator</th><th scope="col">Lock</th><th scope="col">Last sign-in</th></tr></thead>
            <tbody>{names.map((n) => <Row key={n} name={n} />)}</tbody>
          </table>
        ))}
      </section>
      <section aria-labelledby="create-h" class="card">
        <h2 id="create-h">Create an operator account</h2>
        <PasswordForm label="Initial password" button="Create account" name={name} onName={setName}
          send={(password) => change.run(() => api('POST', '/v1/sys/operators', { name, password }), `Account ${name} created. It can sign in once its authenticator is set up.`, () => { setName(''); list.reload(); })} />
        <ShowOutcome outcome={change.outcome} />
      </section>
    </div>
  );
}

export function OperatorDetails({ name }: { name: string }) {
  const path = `sys/operators/${name}`;
  const reset = useChange();
  return (
    <RecordPage<Operator> what="operator account" plural="operator accounts" back="operators" url={url(name)} path={path}
      note="The person can no longer sign in; their live sessions and tokens are revoked. Groups that name the account keep the name."
      view={(o, can, reload) => (
        <>
          <Facts items={[
            ['Authenticator', <Enrolment o={o} />], ['Lock', <Lock o={o} />], ['Failed attempts in a row', String(o.failures)],
            ['Recovery codes left', String(o.recovery_codes_left)], ['Created', when(o.created_at)], ['Password set', when(o.password_changed_at)], ['Last sign-in', when(o.last_login_at)],
          ]} />
          <EditSection title="Reset the account" can={can} path={path}>
            <p>A new password; the authenticator, recovery codes and lock are cleared, so the person sets up their authenticator again. Their live sessions end.</p>
            <PasswordForm label="New password" button="Reset account"
              send={(password) => reset.run(() => api('POST', `${url(name)}/reset`, { password }), `Account ${name} reset: it must set up its authenticator again before signing in.`, reload)} />
            <ShowOutcome outcome={reset.outcome} />
          </EditSection>
        </>
      )} />
  );
}
