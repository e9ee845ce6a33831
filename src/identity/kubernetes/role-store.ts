/** Kubernetes login roles, kept inside the barrier, one record per role. */
import type { Barrier } from '../../barrier/barrier.js';
import { KeyholdError } from '../../errors.js';
import type { KubernetesRole } from './types.js';

const rolePath = (name: string) => `auth/kubernetes/roles/${name}`;

export class KubernetesRoleStore {
  constructor(private readonly barrier: Pick<Barrier, 'getJson' | 'putJson' | 'list' | 'delete'>) {}

  async put(role: KubernetesRole): Promise<void> {
    await this.barrier.putJson(rolePath(role.name), role);
  }

  /** The role, or undefined when there is none (a storage failure throws). */
  async find(name: string): Promise<KubernetesRole | undefined> {
    return (await this.barrier.getJson<KubernetesRole>(rolePath(name))) ?? undefined;
  }

  /** The role; ERR_NOT_FOUND when there is none. */
  async get(name: string): Promise<KubernetesRole> {
    const role = await this.find(name);
    if (!role) throw new KeyholdError('ERR_NOT_FOUND', `no Kubernetes role "${name}"`);
    return role;
  }

  async list(): Promise<string[]> {
    const prefix = rolePath('');
    return (await this.barrier.list(prefix)).map((path) => path.slice(prefix.length)).sort();
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    await this.barrier.delete(rolePath(name));
  }
}
