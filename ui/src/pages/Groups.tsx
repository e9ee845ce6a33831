/**
 * Groups: the list, one group's policies, operator members and SSO group names, and the form that
 * creates or replaces one. The server holds the conferral rule (only a holder of a policy maps a
 * group to it) and, when an approval policy protects the group, answers 202 with the request.
 */
import { useState } from 'preact/hooks';
import { api, encodePath, get } from '../api';
import { EditSection, exists, lines, NameList, RecordPage, ShowOutcome, useChange } from '../admin';
import { Facts, Field, TextArea, useLoad } from '../components';

interface Group { name: string; policies: string[]; members: string[]; external_groups: string[] }

const links = (names: string[], href: string) => (names.length === 0 ? 'none' : (
  <ul class="plain">{names.map((n) => <li key={n}>{href ? <a href={href + encodeURIComponent(n)}>{n}</a> : <code>{n}</code>}</li>)}</ul>
));

function GroupForm({ group, onSaved }: { group?: Group; onSaved: () => void }) {
  const [name, setName] = useState('');
  const [policies, setPolicies] = useState(group?.policies.join('\n') ?? '');
  const [members, setMembers] = useState(group?.members.join('\n') ?? '');
  const [external, setExternal] = useState(group?.external_groups.join('\n') ?? '');
  const change = useChange();
  const target = group?.name ?? name;
  const save = (e: Event) => {
    e.preventDefault();
    const url = `/v1/sys/groups/${encodePath(target)}`;
    void change.run(async () => {
      if (!group && (await exists(url))) throw new Error(`A group named ${target} already exists: change it on its own page. Nothing was saved.`);
      return api('PUT', url, { policies: lines(policies), members: lines(members), external_groups: lines(external) });
    }, `Group ${target} saved.`, onSaved);
  };
  return (
    <form onSubmit={save}>
      {!group && <Field label="Group name" value={name} onInput={setName} required pattern="[a-z0-9][a-z0-9._\-]{0,62}" hint="Lower-case letters, digits, . _ -" />}
      <TextArea label="Policies" value={policies} onInput={setPolicies} hint="One policy name per line. You can only give policies you hold yourself." />
      <TextArea label="Members" value={members} onInput={setMembers} hint="One operator account name per line." />
      <TextArea label="External (SSO) groups" value={external} onInput={setExternal} hint="One identity provider group name per line, exactly as the provider sends it." />
      <button type="submit" disabled={change.busy}>{group ? 'Save group' : 'Create group'}</button>
      <ShowOutcome outcome={change.outcome} />
    </form>
  );
}

export function GroupList() {
  const list = useLoad(() => get<{ groups: string[] }>('/v1/sys/groups'));
  return (
    <div>
      <NameList what="groups" list={list} names={list.data?.groups} href="#/groups/" />
      <section aria-labelledby="create-h" class="card">
        <h2 id="create-h">Create a group</h2>
        <GroupForm onSaved={list.reload} />
      </section>
    </div>
  );
}

export function GroupDetails({ name }: { name: string }) {
  const path = `sys/groups/${name}`;
  return (
    <RecordPage<Group> what="group" plural="groups" back="groups" url={`/v1/sys/groups/${encodePath(name)}`} path={path}
      note="Its members and SSO groups lose the policies it gives them."
      view={(g, can, reload) => (
        <>
          <Facts items={[['Policies', links(g.policies, '#/policies/')], ['Members', links(g.members, '#/operators/')], ['External (SSO) groups', links(g.external_groups, '')]]} />
          <EditSection title="Edit the group" can={can} path={path}><GroupForm group={g} onSaved={reload} /></EditSection>
        </>
      )} />
  );
}
