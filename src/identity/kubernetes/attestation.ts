/**
 * Image attestation: what a pod runs. Every container and init container must reference its
 * image by digest (or the runtime's resolved imageID must carry one), and each digest must be in
 * the role's allowlist or carry a valid cosign key-based signature by one of the role's trusted
 * keys. Signatures are read from the image's registry (the `sha256-<hex>.sig` tag cosign writes);
 * a registry that cannot be reached is a denial with its reason, never a silent allow.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { parseImageId, parsePinned, type PinnedImage } from './image-ref.js';
import { RegistryClient, RegistryError, type Credentials } from './registry-client.js';

export interface ImagePolicy {
  /** `sha256:<hex>` or `<repo>@sha256:<hex>` entries. */
  allowedDigests?: string[];
  /** PEM public keys (ECDSA P-256, as `cosign generate-key-pair` makes). */
  trustedKeysPem?: string[];
  /** Registry hosts reached over plain HTTP (air-gapped mirrors, tests); all others over HTTPS. */
  insecureRegistries?: string[];
}

export interface AttestationResult {
  ok: boolean;
  /** Why not (first failing image), for the denial and the audit record. */
  reason?: string;
  images: PinnedImage[];
}

const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const MAX_SIGNATURE_BYTES = 1024 * 1024;
const POSITIVE_TTL_MS = 10 * 60_000;
const NEGATIVE_TTL_MS = 30_000;

interface CacheEntry {
  ok: boolean;
  reason?: string;
  until: number;
}

export class ImageAttestor {
  readonly #cache = new Map<string, CacheEntry>();
  readonly #registry: RegistryClient;
  readonly #parsedKeys = new Map<string, KeyObject[]>();

  /** `credentials(host)`: configured pull credentials for a registry host, if any. */
  constructor(credentials?: (host: string) => Credentials | undefined) {
    this.#registry = new RegistryClient(MAX_SIGNATURE_BYTES, credentials);
  }

  async attest(pod: V1Pod, policy: ImagePolicy): Promise<AttestationResult> {
    // Ephemeral containers (kubectl debug) run inside the pod too, next to its secrets: they are held to the same policy.
    const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? []), ...(pod.spec?.ephemeralContainers ?? [])];
    const statuses = new Map([...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])].map((s) => [s.name, s.imageID]));
    const images: PinnedImage[] = [];
    for (const container of containers) {
      const pinned = parsePinned(container.image ?? '') ?? parseImageId(statuses.get(container.name));
      if (!pinned) return { ok: false, reason: `image ${container.image ?? '(none)'} of container ${container.name} is not pinned by digest`, images };
      images.push(pinned);
    }
    const { keys, keyset } = this.#trust(policy);
    for (const image of images) {
      const verdict = await this.#verdict(image, policy, keys, keyset);
      if (!verdict.ok) return { ok: false, reason: verdict.reason, images };
    }
    return { ok: true, images };
  }

  /** The role's parsed keys and their fingerprint, parsed once per distinct key set. */
  #trust(policy: ImagePolicy): { keys: KeyObject[]; keyset: string } {
    // The allowlist is checked before any cached verdict, so only the keys decide a signature verdict.
    const keyset = createHash('sha256').update((policy.trustedKeysPem ?? []).join('\n')).digest('hex');
    let keys = this.#parsedKeys.get(keyset);
    if (!keys) {
      // Parsing PEM was 1.6% of the server's CPU in the login storm, once per login.
      if (this.#parsedKeys.size >= 256) this.#parsedKeys.clear();
      keys = (policy.trustedKeysPem ?? []).map((pem) => createPublicKey(pem));
      this.#parsedKeys.set(keyset, keys);
    }
    return { keys, keyset };
  }

  async #verdict(image: PinnedImage, policy: ImagePolicy, keys: KeyObject[], keyset: string): Promise<{ ok: boolean; reason?: string }> {
    const allowed = policy.allowedDigests ?? [];
    if (allowed.includes(image.digest) || allowed.includes(`${image.host}/${image.repository}@${image.digest}`) || allowed.includes(`${image.repository}@${image.digest}`)) return { ok: true };
    if (keys.length === 0) return { ok: false, reason: `image ${image.image}: digest not in the role's allowlist` };
    const cacheKey = `${image.host}/${image.repository}@${image.digest}|${keyset}`;
    const cached = this.#cache.get(cacheKey);
    if (cached && cached.until > Date.now()) return cached;
    let verdict: { ok: boolean; reason?: string };
    try {
      verdict = await this.#verifySignatures(image, keys, (policy.insecureRegistries ?? []).includes(image.host));
    } catch (err) {
      // Not cached: the next login asks the registry again.
      // Whatever went wrong (network, a body cut short, a refused token), the answer is no.
      return { ok: false, reason: `image ${image.image}: registry ${image.host} unreachable or failing (${(err as Error).message}); denied` };
    }
    this.#cache.set(cacheKey, { ...verdict, until: Date.now() + (verdict.ok ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS) });
    return verdict;
  }

  async #verifySignatures(image: PinnedImage, keys: KeyObject[], insecure: boolean): Promise<{ ok: boolean; reason?: string }> {
    const get = (path: string, accept?: string) => this.#registry.get(image.host, image.repository, path, { insecure, ...(accept ? { accept } : {}) });
    const hex = image.digest.slice('sha256:'.length);
    const manifest = await get(`manifests/sha256-${hex}.sig`, MANIFEST_TYPES);
    if (manifest.status === 404) return { ok: false, reason: `image ${image.image}: unsigned (no cosign signature in the registry)` };
    if (manifest.status !== 200) throw new RegistryError(`HTTP ${manifest.status} for the signature manifest`);
    let layers: Array<{ mediaType?: string; digest?: string; annotations?: Record<string, string> }>;
    try {
      layers = (JSON.parse(manifest.body.toString('utf8')) as { layers?: typeof layers }).layers ?? [];
    } catch {
      return { ok: false, reason: `image ${image.image}: signature manifest is not JSON` };
    }
    let sawOtherDigest = false;
    let sawSignature = false;
    for (const layer of layers) {
      const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
      if (layer.mediaType !== SIMPLE_SIGNING || !signature || !layer.digest?.startsWith('sha256:')) continue;
      const blob = await get(`blobs/${layer.digest}`);
      if (blob.status !== 200) throw new RegistryError(`HTTP ${blob.status} for a signature payload`);
      // The payload must be the blob the manifest names.
      if (`sha256:${createHash('sha256').update(blob.body).digest('hex')}` !== layer.digest) continue;
      const signed = keys.some((key) => {
        try {
          return verify('sha256', blob.body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
        } catch {
          return false;
        }
      });
      if (!signed) {
        sawSignature = true;
        continue;
      }
      let payload: { critical?: { type?: string; image?: { 'docker-manifest-digest'?: string } } };
      try {
        payload = JSON.parse(blob.body.toString('utf8')) as typeof payload;
      } catch {
        continue;
      }
      if (payload.critical?.type !== 'cosign container image signature') continue;
      if (payload.critical.image?.['docker-manifest-digest'] !== image.digest) {
        sawOtherDigest = true;
        continue;
      }
      return { ok: true };
    }
    if (sawOtherDigest) return { ok: false, reason: `image ${image.image}: the trusted signature found is for another digest` };
    if (sawSignature) return { ok: false, reason: `image ${image.image}: signed, but not by a key the role trusts` };
    return { ok: false, reason: `image ${image.image}: no valid cosign signature` };
  }
}
