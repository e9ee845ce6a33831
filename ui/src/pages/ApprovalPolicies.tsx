/**
 * Approval policies: which operations, on which paths, need how many approvals from which group.
 * Changing or deleting one needs its own quorum (the server answers 202 with the request), and the
 * operation names are checked by the server against its closed table.
 */
import { useState } from 'preact/hooks';
import { api, encodePath, get } from '../api';
import { EditSection, exists, lines, NameList, RecordPage, ShowOutcome, useChange } from '../admin';
import { Facts, Field, TextArea, useLoad, when } from '../components';

interface ApprovalPolicy { name: string; operations: string[]; paths: string[]; group: string; required: number; updated_at: string }

const SETS = 'key-rotate, key-config, key-delete, key-lifecycle, policy-changes, group-changes, operator-changes, kubernetes-changes, sso-changes, root-key-rotation, approval-policy-changes';

function ApprovalPolicyForm({ policy, onSaved }: { policy?: ApprovalPolicy; onSaved: () => void }) {
  const [name, setName] = useState('');
  const [operations, setOperations] = useState(policy?.operations.join('\n') ?? '');
  const [paths, setPaths] = useState(policy?.paths.join('\n') ?? '');
  const [group, setGroup] = useState(policy?.group ?? '');
  const [required, setRequired] = useState(String(policy?.required ?? 2));
  const change = useChange();
  const target = policy?.name ?? name;
  const save = (e: Event) => {
    e.preventDefault();
    const url = `/v1/sys/approvals/policies/${encodePath(target)}`;
    void change.run(async () => {
      if (!policy && (await exists(url))) throw new Error(`An approval policy named ${target} already exists: change it on its own page. Nothing was saved.`);
      return api('PUT', url, { operations: lines(operations), paths: lines(paths), group: group.trim(), required: Number(required) });
    }, `Approval policy ${target} saved.`, onSaved);
  };
  return (
    <form onSubmit={save}>
      {!policy && <Field label="Approval policy name" value={name} onInput={setName} required pattern="[a-z0-9][a-z0-9._\-]{0,63}" hint="Lower-case letters, digits, . _ -" />}
      <TextArea label="Operations" value={operations} onInput={setOperations} hint={`One per line: an operation (keys.rotate, sys.groups.write…) or a set: ${SETS}.`} />
      <TextArea label="Paths" value={paths} onInput={setPaths} hint="One policy path pattern per line, as in policies: keys/prod-*, sys/groups/+." />
      <Field label="Approving group" value={group} onInput={setGroup} required />
      <Field label="Approvals required" value={required} onInput={setRequired} required inputMode="numeric" pattern="[0-9]+" hint="Distinct members of the group, from 1 to 32." />
      <button type="submit" disabled={change.busy}>{policy ? 'Save approval policy' : 'Create approval policy'}</button>
      <ShowOutcome outcome={change.outcome} />
    </form>
  );
}

export function ApprovalPolicyList() {
  const list = useLoad(() => get<{ policies: string[] }>('/v1/sys/approvals/policies'));
  return (
    <div>
      <NameList what="approval policies" list={list} names={list.data?.policies} href="#/approval-policies/" />
      <section aria-labelledby="create-h" class="card">
        <h2 id="create-h">Create an approval policy</h2>
        <ApprovalPolicyForm onSaved={list.reload} />
      </section>
    </div>
  );
}

export function ApprovalPolicyDetails({ name }: { name: string }) {
  const path = `sys/approvals/policies/${name}`;
  return (
    <RecordPage<ApprovalPolicy> what="approval policy" plural="approval policies" back="approval-policies" url={`/v1/sys/approvals/policies/${encodePath(name)}`} path={path}
      note="The operations it protects run without approval once it is gone; deleting it needs its own quorum."
      view={(p, can, reload) => (
        <>
          <Facts items={[
            ['Operations', p.operations.join(', ')], ['Paths', p.paths.join(', ')],
            ['Approving group', <a href={`#/groups/${encodeURIComponent(p.group)}`}>{p.group}</a>], ['Approvals required', String(p.required)], ['Updated', when(p.updated_at)],
          ]} />
          <EditSection title="Edit the approval policy" can={can} path={path}><ApprovalPolicyForm policy={p} onSaved={reload} /></EditSection>
        </>
      )} />
  );
}
