import 'reflect-metadata';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { KeyObject, createHash, randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { SignJWT } from 'jose';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { builtBinaries, exited, freePorts, killOnExit, tail, waitForProcess } from './processes.js';
import { tempDir } from './server.js';

/**
 * A real OCI registry on loopback (Debian's docker-registry, distribution 2.8) and a real
 * third-party signer (cosign, built by scripts/cosign-build.sh) for the image-attestation tests.
 * Images are built in memory and pushed with the registry HTTP API; cosign signs them by digest,
 * key-based and fully offline (no Rekor, Fulcio or TUF).
 */

const REGISTRY_BIN = '/usr/bin/docker-registry';
/** scripts/cosign-build.sh, resolved from this compiled file (dist/test/helpers/registry.js). */
const BUILD_SCRIPT = resolve(fileURLToPath(import.meta.url), '../../../../scripts/cosign-build.sh');

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Registry {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port>, the host part of image references */
  host: string;
  /** Where its blobs and manifests live (another registry may serve the same ones). */
  dataDir: string;
  /** Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts docker-registry with its own minimal config (never Debian's: that one wants :5000 and
 * htpasswd). `sameDataAs`: serve another registry's images (pushed there); `tokenAuth`: demand
 * registry tokens from a realm, as Docker Hub, GHCR and Harbor do.
 */
export async function startRegistry(options: { sameDataAs?: Registry; tokenAuth?: RegistryTokenServer } = {}): Promise<Registry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing; run scripts/setup.sh (Debian package docker-registry)`);
  const dir = tempDir('keyhold-registry-');
  const [port] = (await freePorts(1)) as [number];
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const config = join(dir, 'config.yml');
  const log = join(dir, 'registry.log');
  const dataDir = options.sameDataAs?.dataDir ?? join(dir, 'data');
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: info, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(dataDir)}}, delete: {enabled: true}}`,
    `http: {addr: "${host}"}`,
    ...(options.tokenAuth ? [`auth: {token: {realm: "${options.tokenAuth.realm}", service: "${options.tokenAuth.service}", issuer: "${options.tokenAuth.issuer}", rootcertbundle: ${JSON.stringify(options.tokenAuth.certFile)}}}`] : []),
    '',
  ].join('\n'));

  const fd = openSync(log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', fd, fd] });
    await new Promise<void>((res, rej) => { child.once('spawn', res); child.once('error', rej); });
  } finally {
    closeSync(fd); // the child has its own copy
  }
  killOnExit(child);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!exited(child)) {
        const gone = new Promise<void>((res) => child.once('exit', () => res()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    await waitForProcess('docker-registry', child, () => fetch(`${url}/v2/`).then((r) => r.status === 200 || (!!options.tokenAuth && r.status === 401)),
      { timeoutMs: 30_000, intervalMs: 100, detail: () => tail(log) });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, host, dataDir, stop };
}

export interface RegistryTokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The PEM certificate the registry trusts for tokens (self-signed, also the signer). */
  certFile: string;
  /** Query strings of the token requests received. */
  requests: URLSearchParams[];
  /** When true, every token request is refused with 401 (as is any without the credentials, when some were given). */
  refuse: boolean;
  stop(): Promise<void>;
}

/**
 * A token service as in Docker's token authentication spec: anonymous pull tokens (ES256 JWTs
 * with the signer's certificate in x5c) for whatever repository is asked for.
 */
export async function startRegistryTokenServer(options: { credentials?: { username: string; password: string } } = {}): Promise<RegistryTokenServer> {
  const dir = tempDir('keyhold-registry-token-');
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'), name: 'CN=keyhold test registry tokens', keys,
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 24 * 3600_000), signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const certFile = join(dir, 'token-cert.pem');
  writeFileSync(certFile, cert.toString('pem'));
  const signer = KeyObject.from(keys.privateKey);
  const service = 'keyhold-test-registry';
  const issuer = 'keyhold-test-token-issuer';
  const server = createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    state.requests.push(query);
    const expected = options.credentials && `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
    if (state.refuse || (expected && req.headers.authorization !== expected)) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const scope = /^repository:([^:]+):(.+)$/.exec(query.get('scope') ?? '');
    const now = Math.floor(Date.now() / 1000);
    void new SignJWT({ access: scope ? [{ type: 'repository', name: scope[1], actions: (scope[2] as string).split(',') }] : [] })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [Buffer.from(cert.rawData).toString('base64')] })
      .setIssuer(issuer).setSubject('').setAudience(query.get('service') ?? service).setIssuedAt(now).setNotBefore(now - 30).setExpirationTime(now + 300).setJti(randomUUID())
      .sign(signer)
      .then((token) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 })));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const state: RegistryTokenServer = {
    realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, service, issuer, certFile, requests: [], refuse: false,
    stop: async () => {
      await new Promise<void>((res) => server.close(() => res()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return state;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A ustar archive of one regular file: a 512-byte header, the data padded to 512, two zero blocks. */
function tarOneFile(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => { header.write(value, offset, length, 'ascii'); };
  const octal = (offset: number, length: number, value: number) => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, name);
  octal(100, 8, 0o644); // mode
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, data.length); // size
  octal(136, 12, 0); // mtime: fixed, so equal content gives equal digests
  field(148, 8, ' '.repeat(8)); // checksum field counts as spaces while summing
  field(156, 1, '0'); // regular file
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, padding, Buffer.alloc(1024)]);
}

async function pushBlob(registry: Pick<Registry, 'url'>, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location');
  if (start.status !== 202 || !location) throw new Error(`start upload to ${repo}: HTTP ${start.status}: ${await start.text()}`);
  await start.arrayBuffer();
  const target = new URL(location, registry.url); // may be relative
  target.searchParams.set('digest', digest);
  const put = await fetch(target, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(blob) });
  if (put.status !== 201) throw new Error(`upload ${digest} to ${repo}: HTTP ${put.status}: ${await put.text()}`);
  await put.arrayBuffer();
  return digest;
}

/**
 * Builds a one-layer OCI image in memory and pushes it as `repo:tag`. The layer holds one small
 * file with `content` (by default a fresh random string, so every call gives a different digest).
 */
export async function pushImage(
  registry: Pick<Registry, 'url' | 'host'>,
  repo: string,
  tag: string,
  content: string = `${repo}:${tag} ${randomUUID()}\n`,
): Promise<{ digest: string; reference: string }> {
  const tar = tarOneFile('hello.txt', Buffer.from(content));
  const layer = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
  }));
  const layerDigest = await pushBlob(registry, repo, layer);
  const configDigest = await pushBlob(registry, repo, config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: OCI_LAYER_GZIP, digest: layerDigest, size: layer.length }],
  }));
  const digest = sha256(manifest);

  const put = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: manifest });
  if (put.status !== 201) throw new Error(`push manifest ${repo}:${tag}: HTTP ${put.status}: ${await put.text()}`);
  await put.arrayBuffer();

  // The registry must serve back exactly these bytes under this digest.
  const get = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
  const served = Buffer.from(await get.arrayBuffer());
  const header = get.headers.get('docker-content-digest');
  if (get.status !== 200 || header !== digest || !served.equals(manifest)) {
    throw new Error(`manifest ${repo}:${tag}: HTTP ${get.status}, Docker-Content-Digest ${header}, expected ${digest}`);
  }
  return { digest, reference: `${registry.host}/${repo}@${digest}` };
}

/** The cosign binary: from KEYHOLD_COSIGN_DIR (set by scripts/test.sh), else built now. */
export async function cosignBin(): Promise<string> {
  return join(await builtBinaries(BUILD_SCRIPT, 'KEYHOLD_COSIGN_DIR', ['cosign']), 'cosign');
}

/**
 * Runs cosign with a throwaway HOME, TUF root and Docker config, so nothing from the machine's
 * user leaks in and nothing is cached. All outbound HTTP(S) goes to a dead proxy on loopback:
 * Go never proxies loopback hosts, so the local registry is still reached directly, while any
 * attempt to reach Sigstore's public services fails at once instead of hanging — the tests prove
 * that signing and verifying need no network.
 */
async function runCosign(args: string[], opts: { password?: string; cwd?: string } = {}): Promise<{ code: number; output: string }> {
  const bin = await cosignBin();
  const home = tempDir('keyhold-cosign-home-');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    DOCKER_CONFIG: join(home, '.docker'),
    TUF_ROOT: join(home, 'tuf'),
    SIGSTORE_NO_CACHE: 'true',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '',
    ...(opts.password !== undefined ? { COSIGN_PASSWORD: opts.password } : {}),
  };
  try {
    return await new Promise((res, rej) => {
      execFile(bin, args, { env, cwd: opts.cwd ?? home, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        if (!err) return res({ code: 0, output });
        // A non-zero exit is an answer; failing to run at all (or a timeout) is not.
        if (typeof err.code === 'number' && !err.killed) return res({ code: err.code, output });
        rej(new Error(`cosign ${args[0]}: ${err.message}\n${output}`));
      });
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export interface CosignKey {
  privateKeyPath: string;
  publicKeyPath: string;
  publicKeyPem: string;
  password: string;
}

/** `cosign generate-key-pair` in `dir`: cosign.key (encrypted with a random password) and cosign.pub. */
export async function cosignKeyPair(dir: string): Promise<CosignKey> {
  mkdirSync(dir, { recursive: true });
  const privateKeyPath = join(dir, 'cosign.key');
  const publicKeyPath = join(dir, 'cosign.pub');
  // cosign would stop and ask before overwriting.
  if (existsSync(privateKeyPath) || existsSync(publicKeyPath)) throw new Error(`${dir} already holds a cosign key pair`);
  const password = randomBytes(16).toString('hex');
  const { code, output } = await runCosign(['generate-key-pair'], { password, cwd: dir });
  if (code !== 0 || !existsSync(privateKeyPath) || !existsSync(publicKeyPath)) {
    throw new Error(`cosign generate-key-pair failed (exit ${code}):\n${output}`);
  }
  return { privateKeyPath, publicKeyPath, publicKeyPem: readFileSync(publicKeyPath, 'utf8'), password };
}

/** Signs `reference` (host/repo@sha256:…) with a key, without the transparency log; `annotations` become `optional`. */
export async function cosignSign(
  reference: string,
  key: Pick<CosignKey, 'privateKeyPath' | 'password'>,
  annotations: Record<string, string> = {},
): Promise<void> {
  const args = ['sign', '--key', key.privateKeyPath, '--tlog-upload=false', '--allow-http-registry', '--yes'];
  for (const [k, v] of Object.entries(annotations)) args.push('-a', `${k}=${v}`);
  args.push(reference);
  const { code, output } = await runCosign(args, { password: key.password });
  if (code !== 0) throw new Error(`cosign sign ${reference} failed (exit ${code}):\n${output}`);
}

/** `cosign verify` with a public key and no transparency log: an independent second opinion. */
export async function cosignVerify(reference: string, publicKeyPath: string): Promise<boolean> {
  const { code } = await runCosign(['verify', '--key', publicKeyPath, '--insecure-ignore-tlog', '--allow-http-registry', reference]);
  return code === 0;
}
