/**
 * Kubernetes service-account login. A pod proves who it is with its projected service-account
 * token: signature, issuer, audience, expiry and not-before are checked locally (jose, against the
 * issuer's keys); then, live, that the service account still exists with the token's uid and, for
 * pod-bound tokens, that the pod exists with the token's pod uid and runs as that service account.
 * Only then is a short-lived keyhold token issued, carrying the identity as selectors. Tokens issued
 * to a pod are revoked when the pod is deleted.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Barrier } from '../../barrier/barrier.js';
import { KeyholdError, isKeyholdError } from '../../errors.js';
import { watchBarrierPaths } from '../../storage/change-watch.js';
import type { TokenStore } from '../tokens.js';
import { checkReviewerAccess } from './access.js';
import { ImageAttestor } from './attestation.js';
import type { KubernetesCluster } from './cluster.js';
import { globMatch } from './glob.js';
import type { KubernetesAuthConfig, KubernetesIdentity, KubernetesRole } from './types.js';

const CONFIG_PATH = 'auth/kubernetes/config';
const rolePath = (name: string) => `auth/kubernetes/roles/${name}`;
const podIndexPath = (podUid: string, tokenId = '') => `auth/kubernetes/pod-tokens/${podUid}/${tokenId}`;
/** Algorithms kube-apiserver signs service-account tokens with; `none` and HMAC never. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
const MAX_JWT_BYTES = 16 * 1024;
/** On replicas, a pod index entry younger than this is never revoked for a pod missing from this process's list (see #revokeMissing). */
const FRESH_INDEX_MS = 30_000;

interface KubernetesClaims {
  namespace?: string;
  serviceaccount?: { name?: string; uid?: string };
  pod?: { name?: string; uid?: string };
}

/**
 * A PEM public key as a KeyObject: usable with every RS*, PS* and ES* algorithm its type allows
 * (jose's importSPKI binds a key to one algorithm, which refused RS384/PS256/ES384 tokens).
 */
function verificationKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new KeyholdError('ERR_BAD_REQUEST', 'public_keys_pem holds something that is not a public key in PEM');
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') throw new KeyholdError('ERR_BAD_REQUEST', 'public_keys_pem keys must be RSA or EC');
  return key;
}

function denied(reason: string): KeyholdError {
  return new KeyholdError('ERR_PERMISSION_DENIED', `login denied: ${reason}`, { details: { reason } });
}

/** Retry-After of a login refused because the pod watch is not synced (about one re-list). */
export const NOT_SYNCED_RETRY_SECONDS = 5;

function notSynced(): KeyholdError {
  const reason = 'keyhold\'s pod watch is not synced (starting, kube-apiserver unreachable, or the reviewer lost list/watch on pods), so it could not revoke this token when the pod is deleted; try again later';
  return new KeyholdError('ERR_KUBERNETES_NOT_SYNCED', `login refused: ${reason}`, { details: { reason } });
}

/** jose's errors, said plainly (they become the audit reason too). */
function verifyFailure(err: unknown): KeyholdError {
  // jose reports a maxTokenAge failure as JWTExpired on claim "iat": check the claim first.
  if ((err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed) && err.claim === 'iat') return denied('token older than the role allows');
  if (err instanceof joseErrors.JWTExpired) return denied('token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return denied('token not yet valid');
    if (err.claim === 'aud') return denied('wrong audience');
    if (err.claim === 'iss') return denied('wrong issuer');
    return denied(`claim ${err.claim} invalid`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return denied('signature invalid');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return denied('not signed by a key of the cluster');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return denied('signing algorithm not allowed');
  if (err instanceof joseErrors.JOSEError) return denied(`malformed token (${err.code})`);
  return err instanceof KeyholdError ? err : denied('token could not be verified');
}

export class KubernetesAuth {
  #config: KubernetesAuthConfig | undefined;
  #cluster: KubernetesCluster | undefined;
  #keys: JWTVerifyGetKey | KeyObject[] | undefined;
  #keysFetchedAt = 0;
  #loading: Promise<void> | undefined;
  readonly #attestor = new ImageAttestor((host) => this.#config?.registryCredentials?.find((c) => c.host === host));
  /** Pod uids the watch saw deleted recently: closes the race between a login's pod check and its index write without another GET. */
  readonly #recentlyDeleted = new Map<string, number>();
  /**
   * Whether this process revokes the tokens of deleted pods. On replicas only the leader does (see
   * src/ha/jobs.ts); every replica keeps its watches, which logins read.
   */
  #revoking = true;
  /** Pods this process issued tokens to lately: it revokes those itself even when it does not lead (see #podDeleted). */
  readonly #issuedHere = new Map<string, number>();
  /** Set when another replica changed the configuration: the next #load reads it again. */
  #stale = false;

  constructor(private readonly barrier: Barrier, private readonly tokens: TokenStore, private readonly log: { warn(message: string): void }) {
    // Configured (or reconfigured) on another replica: load it now, so this replica watches too
    // (it may lead, and revoke) before any login reaches it.
    watchBarrierPaths(barrier.changes, CONFIG_PATH, () => {
      this.#stale = true;
      void this.#load().catch((err: unknown) => this.log.warn(`loading the Kubernetes login configuration failed: ${(err as Error).message}`));
    });
  }

  /**
   * Turns the revocation of deleted pods' tokens on or off (on by default: one process alone
   * revokes). Turned on, it catches up at once: pods this process saw deleted lately (while another
   * replica led, or nobody did), and indexed pods that no longer exist.
   */
  setRevocation(enabled: boolean): void {
    if (enabled === this.#revoking) return;
    this.#revoking = enabled;
    if (!enabled) return;
    void (async () => {
      for (const uid of [...this.#recentlyDeleted.keys()]) await this.revokePod(uid);
      const live = this.#cluster?.livePodUids();
      // Not synced: the next list (onPodsRelisted) does it.
      if (live) await this.#revokeMissing(live);
    })().catch((err: unknown) => this.log.warn(`catching up on deleted pods' tokens failed: ${(err as Error).message}`));
  }

  get revoking(): boolean {
    return this.#revoking;
  }

  /** Whether the pod and service-account watches are live, how much they hold, and how logins were answered. */
  async status(): Promise<{ configured: boolean } & Partial<ReturnType<KubernetesCluster['watchStatus']>>> {
    await this.#load();
    return this.#cluster ? { configured: true, ...this.#cluster.watchStatus() } : { configured: false };
  }

  async #load(): Promise<KubernetesAuthConfig | undefined> {
    // Replicas: what another replica configured is seen by a load that starts after it.
    if (this.barrier.changes) {
      await this.barrier.changes.sync();
      if (this.#stale) {
        this.#stale = false;
        this.#loading = undefined;
      }
    }
    // One load, awaited by every caller: a login arriving while it runs must not see "not configured".
    this.#loading ??= (async () => {
      const config = await this.barrier.getJson<KubernetesAuthConfig>(CONFIG_PATH);
      if (config && JSON.stringify(config) !== JSON.stringify(this.#config)) this.#use(config, await KubernetesAuth.#connect(config));
    })().catch((err: unknown) => {
      this.#loading = undefined; // a storage hiccup is not remembered: the next caller tries again
      throw err;
    });
    await this.#loading;
    return this.#config;
  }

  /** Starts the pod watch if a configuration exists (called at server start). */
  async start(): Promise<void> {
    await this.#load();
  }

  static async #connect(config: KubernetesAuthConfig): Promise<KubernetesCluster> {
    // Loaded only once Kubernetes login is configured: a server without it does not pay for the
    // Kubernetes client's memory.
    const { KubernetesCluster } = await import('./cluster.js');
    return new KubernetesCluster(config);
  }

  #use(config: KubernetesAuthConfig, cluster: KubernetesCluster): void {
    this.#cluster?.close();
    this.#config = config;
    this.#cluster = cluster;
    this.#keys = undefined;
    this.#keysFetchedAt = 0;
    this.#cluster.startWatches({
      onPodDeleted: (uid) => void this.#podDeleted(uid).catch((err: unknown) => this.log.warn(`revoking tokens of deleted pod ${uid} failed: ${(err as Error).message}`)),
      onPodsRelisted: (live) => this.#revoking && void this.#revokeMissing(live).catch((err: unknown) => this.log.warn(`pod token resync failed: ${(err as Error).message}`)),
      onError: (err) => this.log.warn(`kubernetes watch: ${err.message}`),
    });
  }

  /**
   * Stores the configuration and starts its watches, once the reviewer is known to be allowed what
   * login needs (see access.ts): a reviewer that may `get` but not `list`/`watch` pods used to be
   * accepted, and then tokens of deleted pods kept working. Nothing is stored on refusal.
   */
  async configure(config: KubernetesAuthConfig): Promise<void> {
    if (config.publicKeysPem) {
      for (const pem of config.publicKeysPem) verificationKey(pem);
    }
    const cluster = await KubernetesAuth.#connect(config);
    try {
      await checkReviewerAccess(cluster, config);
      await this.barrier.putJson(CONFIG_PATH, config);
    } catch (err) {
      cluster.close();
      throw err;
    }
    this.#use(config, cluster);
  }

  /**
   * For /v1/sys/health, without I/O: whether login is configured and its watches are trusted.
   * `ok` is false while pod-bound logins are refused (the pod watch is not synced).
   */
  health(): { configured: boolean; ok: boolean; podsSynced?: boolean; serviceAccountsSynced?: boolean } {
    if (!this.#cluster) return { configured: false, ok: true };
    const { pods, serviceAccounts } = this.#cluster.watchStatus();
    const podsSynced = pods?.synced === true;
    return { configured: true, ok: podsSynced, podsSynced, serviceAccountsSynced: serviceAccounts?.synced === true };
  }

  /** The configuration without its secrets (the reviewer token, registry passwords). */
  async describeConfig(): Promise<Omit<KubernetesAuthConfig, 'reviewerJwt' | 'registryCredentials'> & { reviewerJwtSet: boolean; registryCredentials?: Array<{ host: string; username: string }> }> {
    const config = await this.#load();
    if (!config) throw new KeyholdError('ERR_NOT_FOUND', 'Kubernetes login is not configured');
    const { reviewerJwt, registryCredentials, ...rest } = config;
    return {
      ...rest, reviewerJwtSet: reviewerJwt !== undefined,
      ...(registryCredentials ? { registryCredentials: registryCredentials.map(({ host, username }) => ({ host, username })) } : {}),
    };
  }

  async putRole(role: KubernetesRole): Promise<void> {
    await this.barrier.putJson(rolePath(role.name), role);
  }

  async role(name: string): Promise<KubernetesRole> {
    const role = await this.barrier.getJson<KubernetesRole>(rolePath(name));
    if (!role) throw new KeyholdError('ERR_NOT_FOUND', `no Kubernetes role "${name}"`);
    return role;
  }

  async listRoles(): Promise<string[]> {
    const prefix = rolePath('');
    return (await this.barrier.list(prefix)).map((path) => path.slice(prefix.length)).sort();
  }

  async deleteRole(name: string): Promise<void> {
    await this.role(name);
    await this.barrier.delete(rolePath(name));
  }

  /** Keys to verify with: the configured PEM keys, or the cluster's JWKS (re-read at most every 30 s when a key is not found). */
  async #verificationKeys(refresh: boolean): Promise<JWTVerifyGetKey | KeyObject[]> {
    const config = this.#config as KubernetesAuthConfig;
    if (config.publicKeysPem) {
      this.#keys ??= config.publicKeysPem.map(verificationKey);
      return this.#keys;
    }
    if (!this.#keys || (refresh && Date.now() - this.#keysFetchedAt > 30_000)) {
      const jwks = await (this.#cluster as KubernetesCluster).jwks();
      this.#keys = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
      this.#keysFetchedAt = Date.now();
    }
    return this.#keys;
  }

  async #verify(jwt: string, role: KubernetesRole): Promise<JWTPayload> {
    const config = this.#config as KubernetesAuthConfig;
    const options = {
      issuer: config.issuer,
      audience: role.audience,
      algorithms: ALGORITHMS,
      clockTolerance: 5,
      ...(role.maxTokenAgeSeconds ? { maxTokenAge: role.maxTokenAgeSeconds } : {}),
      requiredClaims: ['exp', 'sub'],
    };
    const attempt = async (refresh: boolean) => {
      const keys = await this.#verificationKeys(refresh);
      if (Array.isArray(keys)) {
        let last: unknown;
        for (const key of keys) {
          try {
            return (await jwtVerify(jwt, key, options)).payload;
          } catch (err) {
            last = err;
            // A key of another type (EC vs RSA) or a bad signature: try the next key.
            if (!(err instanceof joseErrors.JWSSignatureVerificationFailed) && !(err instanceof joseErrors.JOSENotSupported) && !(err instanceof TypeError)) throw err;
          }
        }
        throw last ?? denied('no verification key configured');
      }
      return (await jwtVerify(jwt, keys, options)).payload;
    };
    try {
      return await attempt(false);
    } catch (err) {
      // A key rotated on the cluster: read the JWKS again, once.
      if (err instanceof joseErrors.JWKSNoMatchingKey && !config.publicKeysPem) {
        try { return await attempt(true); } catch (again) { throw verifyFailure(again); }
      }
      throw verifyFailure(err);
    }
  }

  async login(roleName: string, jwt: string): Promise<{ token: string; accessor: string; ttlSeconds: number; identity: KubernetesIdentity; policies: string[] }> {
    const config = await this.#load();
    if (!config) throw new KeyholdError('ERR_NOT_FOUND', 'Kubernetes login is not configured');
    if (jwt.length > MAX_JWT_BYTES) throw denied('token too large');
    // Only a missing role is a denial; a storage failure stays what it is.
    const role = await this.role(roleName).catch((err: unknown) => { throw isKeyholdError(err, 'ERR_NOT_FOUND') ? denied(`no role "${roleName}"`) : err; });
    const payload = await this.#verify(jwt, role);
    const claims = (payload['kubernetes.io'] ?? {}) as KubernetesClaims;
    const namespace = claims.namespace;
    const sa = claims.serviceaccount;
    if (typeof namespace !== 'string' || typeof sa?.name !== 'string' || typeof sa.uid !== 'string') throw denied('not a service-account token');
    if (payload.sub !== `system:serviceaccount:${namespace}:${sa.name}`) throw denied('subject does not match the service account');
    if (!role.boundNamespaces.some((g) => globMatch(g, namespace))) throw denied(`namespace ${namespace} is not bound to role ${role.name}`);
    if (!role.boundServiceAccounts.some((g) => globMatch(g, sa.name as string))) throw denied(`service account ${sa.name} is not bound to role ${role.name}`);
    const pod = claims.pod;
    if ((role.requirePodBound || role.imagePolicy) && (typeof pod?.name !== 'string' || typeof pod.uid !== 'string')) {
      throw denied(role.imagePolicy ? 'the role has an image policy, which needs a pod-bound token' : 'the role requires a pod-bound token');
    }
    const cluster = this.#cluster as KubernetesCluster;
    // A pod-bound token is promised to die with its pod, and only the pod watch can keep that
    // promise: never issue one on a view that is not live (not listed yet, lost, or forbidden).
    // 503: the caller should come back, not give up.
    if (pod?.uid && !cluster.podsSynced()) throw notSynced();

    // Live checks: a token outlives what it was issued for; these make it die with it. The watch
    // answers them when it holds the object with the token's uid (as kube-apiserver's own token
    // check does), a live GET otherwise; a deletion the watch reports later revokes what was issued.
    const [liveSaUid, livePod] = await Promise.all([
      cluster.serviceAccountUid(namespace, sa.name, sa.uid),
      pod?.name && pod.uid ? cluster.pod(namespace, pod.name, pod.uid) : Promise.resolve(undefined),
    ]);
    if (!liveSaUid) throw denied('service account no longer exists');
    if (liveSaUid !== sa.uid) throw denied('service account was deleted and recreated since the token was issued');
    if (pod?.name) {
      if (!livePod) throw denied('pod no longer exists');
      if (livePod.metadata?.uid !== pod.uid) throw denied('pod was replaced since the token was issued');
      if (livePod.metadata?.deletionTimestamp) throw denied('pod is being deleted');
      if ((livePod.spec?.serviceAccountName ?? 'default') !== sa.name) throw denied('pod does not run as the token\'s service account');
    }

    const selectors = [`k8s:ns:${namespace}`, `k8s:sa:${namespace}/${sa.name}`, `k8s:sa-uid:${sa.uid}`];
    if (pod?.uid) selectors.push(`k8s:pod:${namespace}/${pod.name}`, `k8s:pod-uid:${pod.uid}`);
    if (role.imagePolicy && livePod) {
      // What the pod runs, from the live pod (never from the token): each image pinned and allowed or signed.
      const attestation = await this.#attestor.attest(livePod, role.imagePolicy);
      if (!attestation.ok) throw denied(attestation.reason ?? 'image policy not satisfied');
      for (const image of attestation.images) selectors.push(`k8s:image:${image.host}/${image.repository}@${image.digest}`);
    }
    // The token and its pod index are one atomic write: there is never a pod-bound token the pod's deletion cannot find.
    // No parent: a pod's token lives by its pod (revoked at its deletion) and the server maximum TTL.
    const { token, record } = await this.tokens.create(
      { policies: role.policies, ttlSeconds: role.ttlSeconds, displayName: `k8s:${namespace}/${sa.name}`, selectors },
      (r) => (pod?.uid ? [{ path: podIndexPath(pod.uid, r.id), value: { issuedAt: r.createdAt } }] : []),
    );
    // A deletion the watch reported after our pod check but before the index existed would have
    // found nothing to revoke: check for it now (a later deletion finds the index).
    if (pod?.uid) this.#issuedHere.set(pod.uid, Date.now());
    if (pod?.uid && this.#recentlyDeleted.has(pod.uid)) {
      await this.revokePod(pod.uid);
      throw denied('pod no longer exists');
    }
    return {
      token,
      accessor: record.accessor as string,
      // The role's TTL, clamped to the server maximum.
      ttlSeconds: Math.round((Date.parse(record.expiresAt as string) - Date.parse(record.createdAt)) / 1000),
      policies: record.policies,
      identity: { namespace, serviceAccount: sa.name, serviceAccountUid: sa.uid, ...(pod?.uid ? { podName: pod.name as string, podUid: pod.uid } : {}), selectors },
    };
  }

  async #podDeleted(uid: string): Promise<void> {
    const now = Date.now();
    this.#recentlyDeleted.set(uid, now);
    for (const [u, at] of this.#recentlyDeleted) if (now - at > 10 * 60_000) this.#recentlyDeleted.delete(u);
    for (const [u, at] of this.#issuedHere) if (now - at > 10 * 60_000) this.#issuedHere.delete(u);
    // Not leading, this process still revokes what it issued itself lately: the leader may have
    // seen the deletion before this process wrote the pod's index, and found nothing to revoke.
    if (this.#revoking || this.#issuedHere.has(uid)) await this.revokePod(uid);
  }

  /** Revokes every token issued to the pod. */
  async revokePod(podUid: string): Promise<number> {
    const prefix = podIndexPath(podUid);
    const ids = (await this.barrier.list(prefix)).map((path) => path.slice(prefix.length));
    // Each revocation deletes the token's tree and its pod index entry (written with the token) in
    // one commit. An entry whose token is already gone (left by an older version) is deleted alone.
    for (const id of ids) if ((await this.tokens.revoke(id)) === 0) await this.barrier.delete(podIndexPath(podUid, id));
    return ids.length;
  }

  async #revokeMissing(live: ReadonlySet<string>): Promise<void> {
    const prefix = 'auth/kubernetes/pod-tokens/';
    const listedAt = Date.now();
    const indexed = new Set((await this.barrier.list(prefix)).map((path) => path.slice(prefix.length).split('/')[0] as string));
    for (const uid of indexed) {
      if (live.has(uid)) continue;
      // Another replica may have logged in a pod this process's watch has not seen yet: leave
      // fresh entries to the deletion event (a later list catches any that slip through).
      if (this.barrier.changes && (await this.#newestIssue(uid)) > listedAt - FRESH_INDEX_MS) continue;
      await this.revokePod(uid);
    }
  }

  async #newestIssue(podUid: string): Promise<number> {
    let newest = 0;
    for (const path of await this.barrier.list(podIndexPath(podUid))) {
      const entry = await this.barrier.getJson<{ issuedAt?: string }>(path);
      newest = Math.max(newest, Date.parse(entry?.issuedAt ?? '') || 0);
    }
    return newest;
  }

  close(): void {
    this.#cluster?.close();
  }
}
