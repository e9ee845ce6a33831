/** Container image references, as far as attestation needs them: registry host, repository, digest. */
export interface PinnedImage {
  /** As written in the pod (for messages). */
  image: string;
  host: string;
  repository: string;
  digest: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Parses `[host/]repo[:tag]@sha256:<hex>`; undefined when the image is not pinned by digest.
 * Docker Hub defaults apply (`nginx` → docker.io/library/nginx) as container runtimes do.
 */
export function parsePinned(image: string): PinnedImage | undefined {
  const at = image.lastIndexOf('@');
  if (at < 0) return undefined;
  const digest = image.slice(at + 1);
  if (!DIGEST.test(digest)) return undefined;
  let name = image.slice(0, at);
  // A tag beside the digest is ignored by runtimes: strip it (a colon after the last slash).
  const lastSlash = name.lastIndexOf('/');
  const tagColon = name.indexOf(':', lastSlash + 1);
  if (tagColon >= 0) name = name.slice(0, tagColon);
  const first = name.split('/')[0] as string;
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const host = hasHost ? first : 'docker.io';
  let repository = hasHost ? name.slice(first.length + 1) : name;
  if (host === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(repository)) return undefined;
  return { image, host, repository, digest };
}

/** The digest a runtime resolved (`status.containerStatuses[].imageID`, e.g. `docker-pullable://repo@sha256:…`). */
export function parseImageId(imageId: string | undefined): PinnedImage | undefined {
  if (!imageId) return undefined;
  return parsePinned(imageId.replace(/^[a-z-]+:\/\//, ''));
}
