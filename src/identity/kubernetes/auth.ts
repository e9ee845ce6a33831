/**
 * Kubernetes service-account login, composed: the configuration and its cluster client (replaced
 * together on configuration), role storage, the login steps (login.ts), and the pod revoker, the
 * background unit that revokes a deleted pod's tokens (pod-revoker.ts). The routes and the server
 * see this class; each concern lives in its own file.
 */
import type { BarrierView } from '../../barrier/view.js';
import { KeyholdError } from '../../errors.js';
import type { TokenStore } from '../tokens.js';
import { checkReviewerAccess } from './access.js';
import { ImageAttestor } from './attestation.js';
import type { KubernetesCluster } from './cluster.js';
import { KubernetesConfigStore, redactConfig, type ConfigView } from './config-store.js';
import { login, type LoginContext, type LoginServices } from './login.js';
import { OwnIssues } from './own-issues.js';
import { PodEventHub, type PodEvents } from './pod-events.js';
import { PodRevoker } from './pod-revoker.js';
import { PodTokenIndex } from './pod-token-index.js';
import { KubernetesRoleStore } from './role-store.js';
import type { LoginResult } from './token-issue.js';
import type { KubernetesAuthConfig, KubernetesRole } from './types.js';
import { VerificationKeys, publicKeyFromPem } from './verification-keys.js';

export { NOT_SYNCED_RETRY_SECONDS } from './live-check.js';

export class KubernetesAuth {
  readonly roles: KubernetesRoleStore;
  /**
   * Revokes the tokens of deleted pods. Not started here: the server starts it (on the elected
   * leader only, with several replicas) and close() stops it.
   */
  readonly podRevoker: PodRevoker;
  /** The pod watch's news, whatever the configuration (what the revoker listens to). */
  readonly podEvents: PodEvents;
  readonly #configs: KubernetesConfigStore;
  readonly #services: LoginServices;
  readonly #pods = new PodEventHub(() => this.#context?.cluster.livePodUids());
  #context: LoginContext | undefined;
  #loading: Promise<void> | undefined;

  /** `view`: the Kubernetes mount; `podTokens`: the pod-token view, shared with the token store. */
  constructor(view: BarrierView, podTokens: BarrierView, tokens: TokenStore, private readonly log: { warn(message: string): void }) {
    this.#configs = new KubernetesConfigStore(view);
    this.roles = new KubernetesRoleStore(view);
    const index = new PodTokenIndex(podTokens, tokens);
    this.podEvents = this.#pods;
    this.podRevoker = new PodRevoker(this.#pods, index, log);
    this.#services = {
      roles: this.roles,
      attestor: new ImageAttestor((host) => this.#context?.config.registryCredentials?.find((c) => c.host === host)),
      issuer: { tokens, index, podDeleted: (uid) => this.#pods.deletedLately(uid), issued: (uid) => ownIssues.issued(uid) },
    };
    const ownIssues = new OwnIssues(this.#pods, index, this.podRevoker, log);
    // Configured (or reconfigured) on another replica: connect now, so this replica watches too
    // (it may lead, and revoke) before any login reaches it.
    this.#configs.onChange(() => void this.#load().catch((err: unknown) => log.warn(`loading the Kubernetes login configuration failed: ${(err as Error).message}`)));
  }

  /** Starts the watches if a configuration exists (called at server start). */
  async start(): Promise<void> {
    await this.#load();
  }

  async #load(): Promise<LoginContext | undefined> {
    // The stored configuration, current on every replica (read cache + change feed). Unchanged, it
    // is the object the context was made from, so the common case is one cache hit.
    const config = await this.#configs.load();
    const current = this.#context;
    if (!config || config === current?.config) return current;
    if (current && JSON.stringify(config) === JSON.stringify(current.config)) {
      // Read again (evicted, or rewritten unchanged): the same configuration, no reconnect.
      this.#context = { ...current, config };
      return this.#context;
    }
    // One connect, awaited by every caller: a login arriving while it runs must not see "not configured".
    this.#loading ??= (async () => this.#use(config, await KubernetesAuth.#connect(config)))().finally(() => {
      this.#loading = undefined; // a failure is not remembered: the next caller tries again
    });
    await this.#loading;
    return this.#context;
  }

  static async #connect(config: KubernetesAuthConfig): Promise<KubernetesCluster> {
    // Loaded only once Kubernetes login is configured: a server without it does not pay for the
    // Kubernetes client's memory.
    const { KubernetesCluster } = await import('./cluster.js');
    return new KubernetesCluster(config);
  }

  #use(config: KubernetesAuthConfig, cluster: KubernetesCluster): void {
    this.#context?.cluster.close();
    const keys = new VerificationKeys(config.publicKeysPem ? { pems: config.publicKeysPem } : { jwks: () => cluster.jwks() });
    this.#context = { config, cluster, keys };
    cluster.startWatches({
      onPodDeleted: (uid) => this.#pods.deleted(uid),
      onPodsRelisted: (live) => this.#pods.relisted(live),
      onError: (err) => this.log.warn(`kubernetes watch: ${err.message}`),
    });
  }

  /**
   * Stores the configuration and starts its watches, once the reviewer is known to be allowed what
   * login needs (see access.ts): a reviewer that may `get` but not `list`/`watch` pods used to be
   * accepted, and then tokens of deleted pods kept working. Nothing is stored on refusal.
   */
  async configure(config: KubernetesAuthConfig): Promise<void> {
    for (const pem of config.publicKeysPem ?? []) publicKeyFromPem(pem);
    const cluster = await KubernetesAuth.#connect(config);
    try {
      await checkReviewerAccess(cluster, config);
      await this.#configs.save(config);
    } catch (err) {
      cluster.close();
      throw err;
    }
    this.#use(config, cluster);
  }

  /** Whether the pod and service-account watches are live, how much they hold, and how logins were answered. */
  async status(): Promise<{ configured: boolean } & Partial<ReturnType<KubernetesCluster['watchStatus']>>> {
    const context = await this.#load();
    return context ? { configured: true, ...context.cluster.watchStatus() } : { configured: false };
  }

  /**
   * For /v1/sys/health, without I/O: whether login is configured and its watches are trusted.
   * `ok` is false while pod-bound logins are refused (the pod watch is not synced).
   */
  health(): { configured: boolean; ok: boolean; podsSynced?: boolean; serviceAccountsSynced?: boolean } {
    if (!this.#context) return { configured: false, ok: true };
    const { pods, serviceAccounts } = this.#context.cluster.watchStatus();
    const podsSynced = pods?.synced === true;
    return { configured: true, ok: podsSynced, podsSynced, serviceAccountsSynced: serviceAccounts?.synced === true };
  }

  /** The configuration without its secrets (the reviewer token, registry passwords). */
  async describeConfig(): Promise<ConfigView> {
    const context = await this.#load();
    if (!context) throw new KeyholdError('ERR_NOT_FOUND', 'Kubernetes login is not configured');
    return redactConfig(context.config);
  }

  putRole(role: KubernetesRole): Promise<void> {
    return this.roles.put(role);
  }

  role(name: string): Promise<KubernetesRole> {
    return this.roles.get(name);
  }

  listRoles(): Promise<string[]> {
    return this.roles.list();
  }

  deleteRole(name: string): Promise<void> {
    return this.roles.delete(name);
  }

  async login(roleName: string, jwt: string): Promise<LoginResult> {
    return login(await this.#load(), this.#services, roleName, jwt);
  }

  /** Stops the pod revoker and the watches. */
  close(): void {
    void this.podRevoker.stop();
    this.#context?.cluster.close();
  }
}
