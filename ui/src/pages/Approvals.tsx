/**
 * The approvals inbox: quorum requests, what each would do (operation, URL, the exact parameters
 * and their sha256), approve or deny with a fresh second-factor code; the requester's own
 * approved request is executed from here, once, with exactly the approved parameters.
 */
import { useState } from 'preact/hooks';
import { api, describeError, encodePath, get } from '../api';
import { Field, Loading, Message, useLoad, when } from '../components';
import type { Approval } from '../types';

type Outcome = { kind: 'error' | 'success'; text: string } | undefined;

function Parameters({ id }: { id: string }) {
  const full = useLoad(() => get<Approval & { body: unknown }>(`/v1/sys/approvals/${encodePath(id)}`), [id]);
  if (full.error) return <Message kind="error">{full.error}</Message>;
  if (!full.data) return <Loading what="the parameters" />;
  return <pre class="params" aria-label={`Parameters of ${id}`}>{JSON.stringify({ method: full.data.method, url: full.data.url, body: full.data.body }, null, 2)}</pre>;
}

function ApprovalCard({ approval, me, onDone }: { approval: Approval; me: string; onDone: (message: string) => void }) {
  const [code, setCode] = useState('');
  const [result, setResult] = useState<Outcome>();
  const [busy, setBusy] = useState(false);
  const mine = approval.requester === me;
  const act = async (what: string, call: () => Promise<{ status: number; body: unknown }>, done: (status: number, body: unknown) => string) => {
    setBusy(true);
    setResult(undefined);
    try {
      const answer = await call();
      // Reported by the page: this card may leave the list when it reloads (a new state).
      onDone(`${approval.id}: ${done(answer.status, answer.body)}`);
    } catch (err) {
      setResult({ kind: 'error', text: `${what}: ${describeError(err)}` });
    } finally {
      setCode('');
      setBusy(false);
    }
  };
  const stateOf = (body: unknown) => (body as { state?: string } | undefined)?.state ?? 'updated';
  const approve = () => act('Approve', () => api('POST', `/v1/sys/approvals/${encodePath(approval.id)}/approve`, { params_sha256: approval.params_sha256, code: code.trim() }), (_s, b) => `Approved; the request is now ${stateOf(b)}.`);
  const deny = () => act('Deny', () => api('POST', `/v1/sys/approvals/${encodePath(approval.id)}/deny`, { code: code.trim() }), (_s, b) => `Denied; the request is now ${stateOf(b)}.`);
  const execute = () => act('Execute', () => api('POST', `/v1/sys/approvals/${encodePath(approval.id)}/execute`), (s) => `Executed: the operation answered ${s}.`);
  const cancel = () => act('Cancel', () => api('POST', `/v1/sys/approvals/${encodePath(approval.id)}/cancel`), () => 'Cancelled.');
  const headingId = `a-${approval.id}`;
  return (
    <li class="card approval" aria-labelledby={headingId}>
      <h3 id={headingId}>{approval.operation} on <code>{approval.path}</code></h3>
      <dl class="facts">
        <dt>Request</dt><dd><code>{approval.id}</code></dd>
        <dt>State</dt><dd class={`state state-${approval.state}`}>{approval.state}</dd>
        <dt>Requested by</dt><dd>{approval.requester}{mine ? ' (you)' : ''}</dd>
        <dt>Approvals</dt><dd>{approval.approvals?.length ?? 0} of {approval.required} required{approval.approvals?.length ? `: ${approval.approvals.map((a) => (typeof a === 'string' ? a : a.person)).join(', ')}` : ''}</dd>
        <dt>Parameters sha256</dt><dd><code class="hash">{approval.params_sha256}</code></dd>
        <dt>Expires</dt><dd>{when(approval.expires_at)}</dd>
      </dl>
      <details>
        <summary>Show the exact parameters</summary>
        <Parameters id={approval.id} />
      </details>
      {approval.state === 'pending' && !mine && (
        <form onSubmit={(e) => { e.preventDefault(); void approve(); }}>
          <Field label={`Authenticator code for ${approval.id}`} value={code} onInput={setCode} inputMode="numeric" autocomplete="one-time-code" required
            hint="Deciding re-checks your second factor. Approve only if the hash matches the one the requester sees." />
          <div class="actions">
            <button type="submit" disabled={busy}>Approve</button>
            <button type="button" class="secondary" disabled={busy || code.trim() === ''} onClick={() => void deny()}>Deny</button>
          </div>
        </form>
      )}
      {approval.state === 'pending' && mine && (
        <div class="actions">
          <p class="muted">Waiting for the other approvers.</p>
          <button type="button" class="secondary" disabled={busy} onClick={() => void cancel()}>Cancel request</button>
        </div>
      )}
      {approval.state === 'approved' && mine && <button type="button" disabled={busy} onClick={() => void execute()}>Execute approved request</button>}
      {result && <Message kind={result.kind}>{result.text}</Message>}
    </li>
  );
}

export function Approvals({ me }: { me: string }) {
  const [state, setState] = useState('pending');
  const [done, setDone] = useState<string>();
  const list = useLoad(() => get<{ approvals: Approval[]; truncated?: boolean }>(`/v1/sys/approvals${state === 'all' ? '' : `?state=${state}`}`), [state]);
  return (
    <section aria-labelledby="approvals-h">
      <h2 id="approvals-h">Approval requests</h2>
      <div class="field">
        <label for="approval-state">Show</label>
        <select id="approval-state" value={state} onChange={(e) => { setDone(undefined); setState((e.currentTarget as HTMLSelectElement).value); }}>
          {['pending', 'approved', 'executed', 'denied', 'expired', 'cancelled', 'all'].map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </div>
      {done && <Message kind="success">{done}</Message>}
      {list.error && <Message kind="error">{list.error}</Message>}
      {!list.data && !list.error && <Loading what="approvals" />}
      {list.data && (list.data.approvals.length === 0 ? <p>No {state === 'all' ? '' : `${state} `}requests.</p> : (
        <ul class="plain">{list.data.approvals.map((a) => <ApprovalCard key={a.id} approval={a} me={me} onDone={(m) => { setDone(m); list.reload(); }} />)}</ul>
      ))}
      {list.data?.truncated && <p>Only the newest {list.data.approvals.length} are shown: choose a state to see others.</p>}
      <button type="button" class="secondary" onClick={list.reload}>Refresh</button>
    </section>
  );
}
