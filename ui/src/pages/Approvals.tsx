/**
 * The approvals inbox: pending quorum requests, what each would do (operation, path, and the hash
 * of its exact parameters), approve or deny with a fresh second-factor code.
 */
import { useState } from 'preact/hooks';
import { api, describeError, encodePath, get } from '../api';
import { Field, Loading, Message, useLoad, when } from '../components';
import type { Approval } from '../types';

function ApprovalCard({ approval, onDone }: { approval: Approval; onDone: () => void }) {
  const [code, setCode] = useState('');
  const [result, setResult] = useState<{ kind: 'error' | 'success'; text: string }>();
  const decide = async (decision: 'approve' | 'deny') => {
    setResult(undefined);
    try {
      const answer = await api<{ approval?: Approval }>('POST', `/v1/sys/approvals/${encodePath(approval.id)}/${decision}`, { code });
      setResult({ kind: 'success', text: `${decision === 'approve' ? 'Approved' : 'Denied'}; the request is now ${answer.body?.approval?.state ?? 'updated'}.` });
      onDone();
    } catch (err) {
      setResult({ kind: 'error', text: describeError(err) });
    } finally {
      setCode('');
    }
  };
  const count = approval.approvals?.length ?? 0;
  return (
    <li class="card approval" aria-labelledby={`a-${approval.id}`}>
      <h3 id={`a-${approval.id}`}>{approval.operation} <code>{approval.path}</code></h3>
      <dl class="facts">
        <dt>Request</dt><dd><code>{approval.id}</code></dd>
        <dt>State</dt><dd>{approval.state}</dd>
        {approval.requester && <><dt>Requested by</dt><dd>{approval.requester}</dd></>}
        <dt>Approvals</dt><dd>{count} of {approval.required} required</dd>
        <dt>Parameters sha256</dt><dd><code class="hash">{approval.params_sha256}</code></dd>
        <dt>Expires</dt><dd>{when(approval.expires_at)}</dd>
      </dl>
      {approval.state === 'pending' && (
        <form onSubmit={(e) => { e.preventDefault(); void decide('approve'); }}>
          <Field label={`Authenticator code to decide ${approval.id}`} value={code} onInput={setCode} inputMode="numeric" autocomplete="one-time-code" required
            hint="Deciding re-checks your second factor." />
          <div class="actions">
            <button type="submit">Approve</button>
            <button type="button" class="secondary" onClick={() => void decide('deny')}>Deny</button>
          </div>
        </form>
      )}
      {result && <Message kind={result.kind}>{result.text}</Message>}
    </li>
  );
}

export function Approvals() {
  const list = useLoad(() => get<{ approvals: Approval[] }>('/v1/sys/approvals'));
  return (
    <section aria-labelledby="approvals-h">
      <h2 id="approvals-h">Approval requests</h2>
      <p class="muted">Compare the parameters hash with the one the requester sees before you approve.</p>
      {list.error && <Message kind="error">{list.error}</Message>}
      {!list.data && !list.error && <Loading what="approvals" />}
      {list.data && (list.data.approvals.length === 0 ? <p>No approval requests.</p> : (
        <ul class="plain">{list.data.approvals.map((a) => <ApprovalCard key={a.id} approval={a} onDone={list.reload} />)}</ul>
      ))}
      <button type="button" class="secondary" onClick={list.reload}>Refresh</button>
    </section>
  );
}
