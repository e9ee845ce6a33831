/**
 * Policies: the list, one policy's rules, and its JSON document to create or replace it. The
 * document is parsed here first (a JSON syntax error is shown and nothing is sent); the server's
 * validation (paths, capabilities) answers with its own message and code, shown as they are.
 */
import { useState } from 'preact/hooks';
import { api, encodePath, get } from '../api';
import { EditSection, exists, NameList, RecordPage, ShowOutcome, useChange } from '../admin';
import { Field, Message, TextArea, useLoad } from '../components';

interface Rule { path: string; capabilities: string[] }

const CAPS = 'read, create, update, delete, list, encrypt, decrypt, sign, verify, rotate, deny';
const HINT = `A JSON object {"rules": [{"path": "secrets/app/*", "capabilities": ["read"]}]}. Capabilities: ${CAPS}. A path ends in * for any suffix; + is one segment.`;
const EMPTY = '{\n  "rules": []\n}';

/** The rules as JSON, or what is wrong with the text (nothing is sent then). */
function parse(text: string): { rules?: unknown; error?: string } {
  try {
    return { rules: JSON.parse(text) as unknown };
  } catch (err) {
    return { error: `Not valid JSON: ${(err as Error).message}. Nothing was saved.` };
  }
}

function RulesForm({ name: fixed, initial, onSaved }: { name?: string; initial: string; onSaved: () => void }) {
  const [name, setName] = useState('');
  const [text, setText] = useState(initial);
  const [syntax, setSyntax] = useState<string>();
  const change = useChange();
  const target = fixed ?? name;
  const save = async (e: Event) => {
    e.preventDefault();
    const parsed = parse(text);
    setSyntax(parsed.error);
    if (parsed.error) return;
    const url = `/v1/policies/${encodePath(target)}`;
    await change.run(async () => {
      if (fixed === undefined && (await exists(url))) throw new Error(`A policy named ${target} already exists: change it on its own page. Nothing was saved.`);
      return api('PUT', url, parsed.rules);
    }, `Policy ${target} saved.`, onSaved);
  };
  return (
    <form onSubmit={save}>
      {fixed === undefined && <Field label="Policy name" value={name} onInput={setName} required pattern="[a-z0-9][a-z0-9._\-]{0,63}" hint="Lower-case letters, digits, . _ -" />}
      <TextArea label="Rules (JSON)" value={text} onInput={(v) => { setText(v); setSyntax(undefined); }} rows={10} code hint={HINT} error={syntax ? 'policy-json-error' : undefined} />
      {syntax && <Message kind="error" id="policy-json-error">{syntax}</Message>}
      <button type="submit" disabled={change.busy}>{fixed === undefined ? 'Create policy' : 'Save policy'}</button>
      <ShowOutcome outcome={change.outcome} />
    </form>
  );
}

export function PolicyList() {
  const list = useLoad(() => get<{ policies: string[] }>('/v1/policies'));
  return (
    <div>
      <NameList what="policies" list={list} names={list.data?.policies} href="#/policies/" />
      <section aria-labelledby="create-h" class="card">
        <h2 id="create-h">Create a policy</h2>
        <RulesForm initial={EMPTY} onSaved={list.reload} />
      </section>
    </div>
  );
}

export function PolicyDetails({ name }: { name: string }) {
  const path = `sys/policies/${name}`;
  return (
    <RecordPage<{ rules: Rule[] }> what="policy" plural="policies" back="policies" url={`/v1/policies/${encodePath(name)}`} path={path}
      note="Tokens, groups and roles that name it lose what it gave them."
      view={(p, can, reload) => (
        <>
          <table>
            <caption>Rules</caption>
            <thead><tr><th scope="col">Path</th><th scope="col">Capabilities</th></tr></thead>
            <tbody>{p.rules.map((r, i) => <tr key={i}><td><code>{r.path}</code></td><td>{r.capabilities.join(', ')}</td></tr>)}</tbody>
          </table>
          <EditSection title="Edit the rules" can={can} path={path}>
            <RulesForm name={name} initial={JSON.stringify({ rules: p.rules }, null, 2)} onSaved={reload} />
          </EditSection>
        </>
      )} />
  );
}
