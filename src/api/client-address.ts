/**
 * Who the client of a request is, for the two limits that count per client (the flood limit,
 * flood-limit.ts; the per-address login lockout, operators/login.ts) and for the audit record.
 *
 * Behind a reverse proxy every request arrives from the proxy's address, so one attacker's
 * failures would lock out everyone and the audit would name the proxy. `api.trustedProxies`
 * lists the proxies whose X-Forwarded-For is believed; fastify's `trustProxy` (proxy-addr) walks
 * the header from the right, past trusted hops, and the client is the first address that is not
 * one of them. Entries to the left of it are the client's own words and are never used, so a
 * client cannot pick its address by prepending to the header. Without the setting nobody is
 * trusted and the header is ignored.
 */
import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { RequestState } from './context.js';

/** The client and the immediate peer (a proxy, or the client itself) of a request. */
export interface ClientAddress {
  /** The resolved client address: the peer, or what trusted proxies said it was. */
  client: string;
  /** The socket's remote address. */
  peer: string;
}

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * The 8 groups of an IPv6 address that `isIP` accepts (zone id dropped, an embedded IPv4 tail
 * as its two groups).
 */
function ipv6Groups(ip: string): number[] {
  const text = ip.split('%')[0] as string;
  const part = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap((g) => {
    if (!g.includes('.')) return [parseInt(g, 16)];
    const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
    return [(a << 8) | b, (c << 8) | d];
  }));
  const gap = text.indexOf('::');
  if (gap < 0) return part(text);
  const head = part(text.slice(0, gap));
  const tail = part(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** `::ffff:a.b.c.d` in any spelling (a dual-stack listener's view of an IPv4 client) as `a.b.c.d`; anything else unchanged. */
function unmapped(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const dotted = MAPPED_V4.exec(ip);
  if (dotted) return dotted[1] as string;
  const g = ipv6Groups(ip);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    const [hi, lo] = [g[6] as number, g[7] as number];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return ip;
}

/**
 * The key an address counts under, in the flood limit and the login lockout alike. An IPv6 client
 * is given a whole /64 (often far more), so keying by the full address let one client take a
 * fresh address for every attempt and never reach a limit: IPv6 addresses count by their /64,
 * written `2001:db8:1:2::/64` (the audit's rate-limit summaries show it). An IPv4-mapped address
 * counts as the IPv4 address. Idempotent: a key is its own key.
 */
export function addressKey(ip: string): string {
  const address = unmapped(ip);
  if (isIP(address) !== 6) return address;
  return `${ipv6Groups(address).slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/**
 * The client of a request from proxy-addr's chain (`request.ips`: the peer, then X-Forwarded-For
 * from the right, up to and including the first untrusted entry; absent when no proxy is trusted).
 * A trusted proxy can still hand on an entry that is no address at all (a header it passed
 * through unchecked, or one it did not write): the client is then the hop that handed it on,
 * never text of the sender's choosing, which would give it a fresh limit budget per request and
 * put what it likes in the audit record. Only strict addresses count (proxy-addr takes
 * `0177.0.0.1` for 127.0.0.1, a trusted hop, and would read on past it).
 */
function resolve(request: FastifyRequest): ClientAddress {
  const peer = unmapped(request.socket.remoteAddress ?? '');
  const chain = request.ips;
  if (chain === undefined || chain.length < 2) return { client: peer, peer };
  let client = peer;
  for (let i = 1; i < chain.length; i++) {
    const address = bare(chain[i] as string);
    if (address === undefined) break;
    client = address;
  }
  return { client, peer };
}

const WITH_PORT_V4 = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/;
const BRACKETED_V6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/;

/**
 * An X-Forwarded-For entry as a strict address (IPv4-mapped as IPv4), or undefined. Some load
 * balancers write ADDRESS:PORT or [IPv6]:PORT; that is taken as the address.
 */
function bare(entry: string): string | undefined {
  if (isIP(entry) !== 0) return unmapped(entry);
  const m = WITH_PORT_V4.exec(entry) ?? BRACKETED_V6.exec(entry);
  if (m === null || (m[2] !== undefined && Number(m[2]) > 65535)) return undefined;
  const address = m[1] as string;
  return isIP(address) !== 0 ? unmapped(address) : undefined;
}

/** The request's client and peer, resolved once per request (kept in its state). */
export function clientAddress(request: FastifyRequest): ClientAddress {
  // No state before keyhold's onRequest hook has run (or on an instance without it).
  const state = request.keyhold as RequestState | null | undefined;
  if (state === null || state === undefined) return resolve(request);
  return (state.client ??= resolve(request));
}

/** The key the request's client counts under (addressKey of its resolved address). */
export function clientKey(request: FastifyRequest): string {
  return addressKey(clientAddress(request).client);
}

/**
 * Why an `api.trustedProxies` entry is refused, or undefined when it is a CIDR (or a single
 * address) keyhold will trust. Stricter than proxy-addr on purpose: no named ranges
 * (`loopback`, `uniquelocal`), netmasks or octal/hex spellings, no host bits past the prefix (a
 * typo for the proxy's own /32 should not silently trust its whole /8), and never everything.
 */
export function trustedProxyProblem(entry: string): string | undefined {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0 || address.includes('%')) return 'is not an IP address or CIDR (ADDRESS or ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8)';
  const bits = version === 4 ? 32 : 128;
  if (slash < 0) return undefined;
  const prefixText = entry.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) return `has an invalid prefix length (0 to ${bits} for IPv${version})`;
  const prefix = Number(prefixText);
  if (prefix === 0) {
    return 'trusts every address: any client could then choose the address it is limited and audited under by sending X-Forwarded-For; list only your proxies\' addresses';
  }
  const groups = version === 4 ? address.split('.').map(Number) : ipv6Groups(address);
  const width = version === 4 ? 8 : 16;
  const network = groups.map((g, i) => {
    const keep = Math.max(0, Math.min(width, prefix - i * width));
    return keep === 0 ? 0 : g & ~((1 << (width - keep)) - 1) & ((1 << width) - 1);
  });
  if (network.some((g, i) => g !== groups[i])) {
    const text = version === 4 ? network.join('.') : compressV6(network);
    return `has address bits set past its /${prefix}: write ${text}/${prefix} for the network, or the proxy's own address alone`;
  }
  return undefined;
}

/** An IPv6 address in its short form (the longest run of zero groups as `::`). */
function compressV6(groups: number[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}
