/**
 * Groups (`sys/groups/<name>`): operators and SSO group names mapped to policies. A person's
 * policies are the union of those of every group naming them (as an operator, or through one of
 * their SSO groups). Writing a group confers its policies, so the route checks the conferral rule
 * (src/policy/confer.ts) on the whole new list; this store only keeps the records.
 */
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { POLICY_NAME_PATTERN } from '../policy/parse.js';
import { OPERATOR_NAME_PATTERN } from '../identity/person.js';

export const GROUP_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** SSO group names come from the provider: printable characters (spaces inside) but '/', bounded. */
export const EXTERNAL_GROUP_PATTERN = /^[^\s/\p{Cc}](?:[^/\p{Cc}]{0,253}[^\s/\p{Cc}])?$/u;
export const MAX_GROUP_ENTRIES = 256;

export interface GroupRecord {
  name: string;
  policies: string[];
  /** Operator names. */
  members: string[];
  /** SSO group names (the ID token's groups claim). */
  externalGroups: string[];
}

/** Who a person is, for `policiesFor`: an operator name, SSO groups, or both. */
export interface Person {
  operator?: string;
  externalGroups?: string[];
}

function checkList(what: string, list: readonly string[], pattern: RegExp): string[] {
  if (!Array.isArray(list) || list.length > MAX_GROUP_ENTRIES) throw new KeyholdError('ERR_BAD_REQUEST', `${what}: at most ${MAX_GROUP_ENTRIES} entries`);
  for (const entry of list) if (typeof entry !== 'string' || !pattern.test(entry)) throw new KeyholdError('ERR_BAD_REQUEST', `${what}: "${String(entry).slice(0, 64)}" is not a valid name`);
  return [...new Set(list)].sort();
}

export class GroupStore {
  constructor(private readonly view: BarrierView) {}

  async put(input: GroupRecord): Promise<GroupRecord> {
    if (!GROUP_NAME_PATTERN.test(input.name)) throw new KeyholdError('ERR_BAD_REQUEST', `group names match ${GROUP_NAME_PATTERN.source}`);
    const record: GroupRecord = {
      name: input.name,
      policies: checkList('policies', input.policies, POLICY_NAME_PATTERN),
      members: checkList('members', input.members, OPERATOR_NAME_PATTERN),
      externalGroups: checkList('external_groups', input.externalGroups, EXTERNAL_GROUP_PATTERN),
    };
    await this.view.put(record.name, record);
    return record;
  }

  /** The group, or ERR_GROUP_NOT_FOUND. */
  async get(name: string): Promise<GroupRecord> {
    const record = GROUP_NAME_PATTERN.test(name) ? await this.view.get<GroupRecord>(name) : null;
    if (!record) throw new KeyholdError('ERR_GROUP_NOT_FOUND', `group "${name}" does not exist`);
    return record;
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    await this.view.delete(name);
  }

  list(): Promise<string[]> {
    return this.view.list();
  }

  /** The operators in `group`; none when the group does not exist (so nobody can approve for it). */
  async membersOf(group: string): Promise<string[]> {
    if (!GROUP_NAME_PATTERN.test(group)) return [];
    return (await this.view.get<GroupRecord>(group))?.members ?? [];
  }

  /**
   * The groups naming `person` (as an operator member, or by one of its SSO groups) and the union
   * of their policies, both sorted. Read from storage, not from a cache: a login must see a
   * removal made a moment ago on another replica.
   */
  async policiesFor(person: Person): Promise<{ groups: string[]; policies: string[] }> {
    const external = new Set(person.externalGroups ?? []);
    const groups: string[] = [];
    const policies = new Set<string>();
    const records = await Promise.all((await this.view.list()).map((name) => this.view.get<GroupRecord>(name)));
    for (const g of records) {
      if (!g) continue;
      const member = (person.operator !== undefined && g.members.includes(person.operator)) || g.externalGroups.some((e) => external.has(e));
      if (!member) continue;
      groups.push(g.name);
      for (const p of g.policies) policies.add(p);
    }
    return { groups: groups.sort(), policies: [...policies].sort() };
  }
}
