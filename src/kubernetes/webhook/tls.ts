/**
 * Where the webhook's serving certificate comes from.
 *  - files: PEM files (cert-manager, or your own CA), re-read when they change;
 *  - self-managed: an ECDSA P-256 CA and leaf made in memory (@peculiar/x509), the CA published as
 *    the webhook's caBundle, the leaf re-issued at two thirds of its life by the same CA. Because
 *    the CA outlives many leaves and is already trusted, a new leaf never opens a "bad
 *    certificate" window; when the CA itself is replaced, the bundle carries old and new CA first.
 */
import 'reflect-metadata';
import { readFileSync, statSync } from 'node:fs';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TlsMaterial {
  cert: string;
  key: string;
}

export interface TlsSource {
  current(): TlsMaterial;
  /** Called with new material whenever it changes. */
  onChange(listener: (material: TlsMaterial) => void): void;
  stop(): void;
}

export function fileTls(certFile: string, keyFile: string, checkMs = 10_000, warn: (message: string) => void = () => undefined): TlsSource {
  const read = (): TlsMaterial => ({ cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') });
  const stamp = () => `${statSync(certFile).mtimeMs}:${statSync(keyFile).mtimeMs}`;
  let material = read();
  createSecureContext(material); // a bad pair at start is a clear error, not a server that cannot handshake
  let last = stamp();
  const listeners: Array<(m: TlsMaterial) => void> = [];
  const timer = setInterval(() => {
    try {
      const now = stamp();
      if (now === last) return;
      const next = read();
      // A pair caught mid-rotation (new certificate, old key) or a broken file must not replace a
      // working one: TLS would fail for every AdmissionReview, and with failurePolicy Fail no pod
      // could be created. Keep serving the old pair and look again at the next tick.
      createSecureContext(next);
      material = next;
      last = now;
      for (const l of listeners) l(material);
    } catch (err) {
      warn(`certificate reload failed; still serving the previous one: ${(err as Error).message}`);
    }
  }, checkMs);
  timer.unref();
  return { current: () => material, onChange: (l) => { listeners.push(l); }, stop: () => clearInterval(timer) };
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface Authority {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  pem: string;
}


const serial = () => randomBytes(16).toString('hex').replace(/^[89a-f]/, '1');

/** Each CA's name carries a random suffix, so operators (and tests) can tell generations apart. */
export async function makeAuthority(lifetimeMs: number, name = `keyhold-webhook-ca-${randomBytes(4).toString('hex')}`): Promise<Authority> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: `CN=${name}`, notBefore: new Date(Date.now() - 5 * 60_000), notAfter: new Date(Date.now() + lifetimeMs),
    keys, signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  return { cert, keys, pem: cert.toString('pem') };
}

export async function issueLeaf(ca: Authority, hosts: { dns: string[]; ips: string[] }, lifetimeMs: number): Promise<TlsMaterial> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: `CN=${hosts.dns[0] ?? hosts.ips[0] ?? 'keyhold-webhook'}`, issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 5 * 60_000), notAfter: new Date(Date.now() + lifetimeMs),
    publicKey: keys.publicKey, signingKey: ca.keys.privateKey, signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...hosts.dns.map((value) => ({ type: 'dns' as const, value })), ...hosts.ips.map((value) => ({ type: 'ip' as const, value }))]),
    ],
  });
  return { cert: `${cert.toString('pem')}\n`, key: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string };
}

export interface SelfManagedOptions {
  dnsNames: string[];
  ips?: string[];
  leafLifetimeMs?: number;
  caLifetimeMs?: number;
  /** Publishes the CA bundle (patches the MutatingWebhookConfiguration); must succeed before a leaf from a new CA is served. */
  publishCaBundle: (bundlePem: string) => Promise<void>;
  log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void };
}

export async function selfManagedTls(options: SelfManagedOptions): Promise<TlsSource & { caBundle(): string }> {
  const leafLifetime = options.leafLifetimeMs ?? 24 * 3600_000;
  const caLifetime = options.caLifetimeMs ?? 365 * 24 * 3600_000;
  const hosts = { dns: options.dnsNames, ips: options.ips ?? [] };
  if (leafLifetime > caLifetime / 3) throw new Error('the leaf lifetime must be at most a third of the CA lifetime, so leaves of a retiring CA expire before it does');
  let ca = await makeAuthority(caLifetime);
  let caCreated = Date.now();
  let nextCa: Authority | undefined;
  let previousCa: Authority | undefined;
  // Everything a client may meet: the CA signing leaves now, the one taking over, the one retiring.
  const bundle = () => [ca, nextCa, previousCa].filter((a): a is Authority => a !== undefined).map((a) => a.pem).join('\n');
  await options.publishCaBundle(bundle());
  let material = await issueLeaf(ca, hosts, leafLifetime);
  const listeners: Array<(m: TlsMaterial) => void> = [];
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  /**
   * CA rotation spans two leaf renewals: first the new CA joins the published bundle while leaves
   * still come from the old one (kube-apiserver picks the bundle up in its own time); only at the
   * next renewal do leaves come from the new CA. No client ever sees a leaf it cannot verify.
   */
  const rotate = async () => {
    try {
      if (nextCa) {
        previousCa = ca;
        ca = nextCa;
        nextCa = undefined;
        caCreated = Date.now();
        options.log.info({}, 'webhook leaves now come from the new CA');
      } else if (Date.now() - caCreated >= (caLifetime * 2) / 3) {
        nextCa = await makeAuthority(caLifetime);
        await options.publishCaBundle(bundle());
        options.log.info({}, 'new webhook CA published beside the current one');
      }
      material = await issueLeaf(ca, hosts, leafLifetime);
      for (const l of listeners) l(material);
      options.log.info({}, 'webhook serving certificate renewed');
    } catch (err) {
      options.log.warn({ err: (err as Error).message }, 'certificate renewal failed; serving the current one and retrying');
    } finally {
      schedule();
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void rotate(), (leafLifetime * 2) / 3);
    timer.unref();
  };
  schedule();
  return {
    current: () => material,
    onChange: (l) => { listeners.push(l); },
    stop: () => { stopped = true; if (timer) clearTimeout(timer); },
    caBundle: bundle,
  };
}
