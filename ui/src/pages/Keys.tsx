/** Keys: the list, creation, and one key's details, versions and rotation (through quorum when a policy requires it). */
import { useState } from 'preact/hooks';
import { api, describeError, encodePath, get } from '../api';
import { AwaitingApproval, isApprovalAnswer } from '../approval';
import { Badge, Facts, Field, Loading, Message, Select, useLoad, when } from '../components';
import type { Approval, KeyDescription } from '../types';

const KEY_TYPES = ['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
const PROTECTIONS = ['hsm', 'wrapped'] as const;

export function KeyList() {
  const list = useLoad(() => get<{ keys: string[] }>('/v1/keys'));
  const [name, setName] = useState('');
  const [type, setType] = useState<string>('aes256-gcm');
  const [protection, setProtection] = useState<string>('hsm');
  const [result, setResult] = useState<{ kind: 'error' | 'success'; text: string }>();
  const [pending, setPending] = useState<Approval>();

  const create = async (e: Event) => {
    e.preventDefault();
    setResult(undefined);
    setPending(undefined);
    try {
      const answer = await api<KeyDescription | { approval: Approval }>('POST', '/v1/keys', { name, type, protection });
      if (isApprovalAnswer(answer.status, answer.body)) setPending(answer.body.approval);
      else setResult({ kind: 'success', text: `Key ${name} created.` });
      setName('');
      list.reload();
    } catch (err) {
      setResult({ kind: 'error', text: describeError(err) });
    }
  };

  return (
    <div>
      <section aria-labelledby="keys-h">
        <h2 id="keys-h">Keys</h2>
        {list.error && <Message kind="error">{list.error}</Message>}
        {!list.data && !list.error && <Loading what="keys" />}
        {list.data && (list.data.keys.length === 0
          ? <p>No keys yet.</p>
          : <ul class="names">{list.data.keys.map((k) => <li key={k}><a href={`#/keys/${encodeURIComponent(k)}`}>{k}</a></li>)}</ul>)}
      </section>
      <section aria-labelledby="create-h" class="card">
        <h2 id="create-h">Create a key</h2>
        <form onSubmit={create}>
          <Field label="Key name" name="key-name" value={name} onInput={setName} required pattern="[A-Za-z0-9_.\-]+" />
          <Select label="Type" value={type} options={KEY_TYPES} onChange={setType} />
          <Select label="Protection" value={protection} options={PROTECTIONS} onChange={setProtection} />
          <button type="submit">Create key</button>
        </form>
        {result && <Message kind={result.kind}>{result.text}</Message>}
        {pending && <AwaitingApproval approval={pending} />}
      </section>
    </div>
  );
}

export function KeyDetails({ name }: { name: string }) {
  const key = useLoad(() => get<KeyDescription>(`/v1/keys/${encodePath(name)}`), [name]);
  const [result, setResult] = useState<{ kind: 'error' | 'success'; text: string }>();
  const [pending, setPending] = useState<Approval>();
  const [busy, setBusy] = useState(false);

  const rotate = async () => {
    setBusy(true);
    setResult(undefined);
    setPending(undefined);
    try {
      const answer = await api<KeyDescription | { approval: Approval }>('POST', `/v1/keys/${encodePath(name)}/rotate`);
      if (isApprovalAnswer(answer.status, answer.body)) setPending(answer.body.approval);
      else {
        setResult({ kind: 'success', text: `Rotated: the latest version is now ${(answer.body as KeyDescription).latest_version}.` });
        key.reload();
      }
    } catch (err) {
      setResult({ kind: 'error', text: describeError(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <p><a href="#/keys">← All keys</a></p>
      <h2>Key {name}</h2>
      {key.error && <Message kind="error">{key.error}</Message>}
      {!key.data && !key.error && <Loading what="the key" />}
      {key.data && (
        <>
          <Facts items={[
            ['Type', key.data.type], ['Protection', key.data.protection], ['Created', when(key.data.created_at)],
            ['Latest version', <span id="latest-version">{key.data.latest_version}</span>], ['Minimum decryption version', String(key.data.min_decryption_version)],
            ['State', <Badge ok={!key.data.disabled} yes="enabled" no="disabled" />], ['Deletion allowed', key.data.deletion_allowed ? 'yes' : 'no'],
          ]} />
          <table>
            <caption>Versions</caption>
            <thead><tr><th scope="col">Version</th><th scope="col">Created</th><th scope="col">Usable for decryption</th></tr></thead>
            <tbody>
              {[...key.data.versions].reverse().map((v) => (
                <tr key={v.version}><th scope="row">{v.version}</th><td>{when(v.created_at)}</td><td>{v.version >= key.data!.min_decryption_version ? 'yes' : 'retired'}</td></tr>
              ))}
            </tbody>
          </table>
          <button type="button" onClick={rotate} disabled={busy}>Rotate key</button>
        </>
      )}
      {result && <Message kind={result.kind}>{result.text}</Message>}
      {pending && <AwaitingApproval approval={pending} />}
    </div>
  );
}
