/** Kubernetes login roles, kept inside the barrier, one record per role. */
import type { BarrierView } from '../../barrier/view.js';
import { KeyholdError } from '../../errors.js';
import type { KubernetesRole } from './types.js';

/** In the Kubernetes view (MOUNTS.kubernetes). */
const roleKey = (name: string) => `roles/${name}`;

export class KubernetesRoleStore {
  constructor(private readonly view: Pick<BarrierView, 'get' | 'put' | 'list' | 'delete'>) {}

  async put(role: KubernetesRole): Promise<void> {
    await this.view.put(roleKey(role.name), role);
  }

  /** The role, or undefined when there is none (a storage failure throws). */
  async find(name: string): Promise<KubernetesRole | undefined> {
    return (await this.view.get<KubernetesRole>(roleKey(name))) ?? undefined;
  }

  /** The role; ERR_NOT_FOUND when there is none. */
  async get(name: string): Promise<KubernetesRole> {
    const role = await this.find(name);
    if (!role) throw new KeyholdError('ERR_NOT_FOUND', `no Kubernetes role "${name}"`);
    return role;
  }

  async list(): Promise<string[]> {
    const prefix = roleKey('');
    return (await this.view.list(prefix)).map((key) => key.slice(prefix.length)).sort();
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    await this.view.delete(roleKey(name));
  }
}
