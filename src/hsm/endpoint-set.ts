/**
 * The HSM endpoint set the operator publishes and the server reads (a mounted file, or a watched
 * ConfigMap): one JSON document, key `endpoints.json` of the ConfigMap,
 * `{"cluster": "<HSMCluster name>", "endpoints": [{"name": "a", "address": "unix:path=/x.sock"}]}`,
 * healthy endpoints only, sorted by name. One parser for both readers, so a file and a ConfigMap
 * can never be read differently.
 */
import { KeyholdError } from '../errors.js';

export interface HsmEndpoint {
  /** Stable per member; `${name}` in hsm.memberTemplate (so it may end up in a path: no slashes). */
  name: string;
  /** What the module needs to reach the member, e.g. P11_KIT_SERVER_ADDRESS (`${address}`). */
  address: string;
}

export interface HsmEndpointSet {
  cluster: string;
  endpoints: HsmEndpoint[];
}

/** The ConfigMap key holding the document. */
export const ENDPOINTS_KEY = 'endpoints.json';

/** A name usable in a file name or label value: no slash, no leading dot, at most 63 characters. */
export const ENDPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_ADDRESS = 1024;
const MAX_ENDPOINTS = 256;

function bad(message: string): KeyholdError {
  return new KeyholdError('ERR_CONFIG', `HSM endpoint set: ${message}`);
}

/** Checks one endpoint; throws ERR_CONFIG naming what is wrong (never echoing a long value). */
export function checkEndpoint(value: unknown, where: string): HsmEndpoint {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${where} is not an object`);
  const { name, address } = value as Record<string, unknown>;
  if (typeof name !== 'string' || !ENDPOINT_NAME.test(name)) throw bad(`${where}.name must match ${ENDPOINT_NAME.source}`);
  if (typeof address !== 'string' || address.length === 0 || address.length > MAX_ADDRESS || /[\0\n\r]/.test(address)) {
    throw bad(`${where}.address must be a non-empty string of at most ${MAX_ADDRESS} characters on one line`);
  }
  return { name, address };
}

/** Checks a list of endpoints: valid, unique names, at most MAX_ENDPOINTS. Returns them sorted by name. */
export function checkEndpoints(value: unknown, where = 'endpoints'): HsmEndpoint[] {
  if (!Array.isArray(value)) throw bad(`${where} is not an array`);
  if (value.length > MAX_ENDPOINTS) throw bad(`${where} has more than ${MAX_ENDPOINTS} entries`);
  const seen = new Set<string>();
  const out = value.map((v, i) => {
    const e = checkEndpoint(v, `${where}[${i}]`);
    if (seen.has(e.name)) throw bad(`${where} names "${e.name}" twice`);
    seen.add(e.name);
    return e;
  });
  return sortEndpoints(out);
}

export function sortEndpoints<T extends HsmEndpoint>(endpoints: T[]): T[] {
  return [...endpoints].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Parses the document (file contents or the ConfigMap's `endpoints.json`). */
export function parseEndpointSet(text: string): HsmEndpointSet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('not a JSON object');
  const { cluster, endpoints } = doc as Record<string, unknown>;
  if (typeof cluster !== 'string' || cluster.length === 0 || cluster.length > 253) throw bad('"cluster" must be a non-empty string');
  return { cluster, endpoints: checkEndpoints(endpoints) };
}

/** The document as the operator writes it: endpoints sorted by name, keys in a fixed order, so equal sets are equal strings. */
export function formatEndpointSet(set: HsmEndpointSet): string {
  return `${JSON.stringify({ cluster: set.cluster, endpoints: sortEndpoints(set.endpoints).map((e) => ({ name: e.name, address: e.address })) })}\n`;
}
