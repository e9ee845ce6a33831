import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { builtBinaries, exited, freePorts, killOnExit, tail, waitForProcess } from './processes.js';
import { tempDir } from './server.js';

/**
 * A real kube-apiserver + etcd on loopback for the Kubernetes tests: no kubelet, controller-manager
 * or scheduler, so pods are stored and admitted but never run, and nothing creates default service
 * accounts. Binaries come from scripts/k8s-build.sh (built once into a cache).
 */

const execFileAsync = promisify(execFile);

/** scripts/k8s-build.sh, resolved from this compiled file (dist/test/helpers/control-plane.js). */
const BUILD_SCRIPT = resolve(fileURLToPath(import.meta.url), '../../../../scripts/k8s-build.sh');

export interface ControlPlaneOptions {
  /** EncryptionConfiguration YAML; written to a file and passed as --encryption-provider-config. */
  encryptionConfig?: string;
  extraApiserverFlags?: string[];
  /** Work in this directory and keep it after stop(); by default a temp dir that stop() removes. */
  dir?: string;
}

export interface ControlPlane {
  /** Admin (system:masters) client configuration. */
  kubeConfig: KubeConfig;
  /** https://127.0.0.1:<port> */
  url: string;
  caPem: string;
  adminToken: string;
  /** http://127.0.0.1:<port> */
  etcdUrl: string;
  dir: string;
  /** The same admin configuration as a file, for kubectl-style tools and debugging. */
  kubeconfigPath: string;
  /** Written only when opts.encryptionConfig was given; rewrite it before restartApiserver() to change it. */
  encryptionConfigPath: string | undefined;
  logs: { etcd: string; apiserver: string };
  /** The raw stored value of an etcd key (e.g. `/registry/secrets/<ns>/<name>`), bypassing the apiserver. */
  etcdGet(key: string): Promise<Buffer | undefined>;
  /** A GET against the apiserver, e.g. `/healthz/kms-providers`: as admin, or with `token` ('' for anonymous). */
  rawGet(path: string, token?: string): Promise<{ status: number; body: string }>;
  /** Stops kube-apiserver and starts it again with the same flags against the same etcd; waits for /readyz. */
  restartApiserver(): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
}

/** The directory holding kube-apiserver and etcd: KEYHOLD_K8S_DIR (set by scripts/test.sh), else built now. */
export function k8sBinDir(): Promise<string> {
  return builtBinaries(BUILD_SCRIPT, 'KEYHOLD_K8S_DIR', ['kube-apiserver', 'etcd']);
}

function ecKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A CA and a serving certificate for 127.0.0.1/localhost, via the openssl CLI (node:crypto cannot issue X.509). */
export async function makePki(dir: string): Promise<{ caPem: string; certFile: string; keyFile: string }> {
  const caKey = join(dir, 'ca.key');
  const caCrt = join(dir, 'ca.crt');
  const keyFile = join(dir, 'apiserver.key');
  const certFile = join(dir, 'apiserver.crt');
  writeFileSync(caKey, ecKeyPem(), { mode: 0o600 });
  writeFileSync(keyFile, ecKeyPem(), { mode: 0o600 });
  await execFileAsync('openssl', ['req', '-x509', '-new', '-key', caKey, '-out', caCrt, '-days', '7', '-subj', '/CN=keyhold-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await execFileAsync('openssl', ['req', '-x509', '-new', '-key', keyFile, '-CA', caCrt, '-CAkey', caKey, '-out', certFile, '-days', '7',
    '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'keyUsage=critical,digitalSignature']);
  return { caPem: readFileSync(caCrt, 'utf8'), certFile, keyFile };
}


/** Starts a binary with stdout+stderr appended to `log`; rejects if it cannot be spawned at all. */
async function startProcess(bin: string, args: string[], log: string): Promise<ChildProcess> {
  const fd = openSync(log, 'a');
  writeSync(fd, `--- ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    await new Promise<void>((res, rej) => { child.once('spawn', res); child.once('error', rej); });
    killOnExit(child);
    return child;
  } finally {
    closeSync(fd); // the child has its own copy
  }
}


/** SIGTERM, then SIGKILL if it has not gone after `graceMs`. */
async function stopProcess(child: ChildProcess | undefined, graceMs = 5_000): Promise<void> {
  if (!child || exited(child)) return;
  const gone = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    gone.then(() => false),
    new Promise<boolean>((res) => { timer = setTimeout(() => res(true), graceMs); }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await gone;
  }
}


/**
 * Starts etcd and kube-apiserver on fresh ports. A port can still be taken between the pick and
 * the bind (by another test process's explicit bind), so a start that fails on that alone is
 * retried on new ports.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startControlPlaneOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startControlPlaneOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const bin = await k8sBinDir();
  const dir = opts.dir ?? tempDir('keyhold-k8s-');
  mkdirSync(dir, { recursive: true });
  const [etcdPort, peerPort, apiPort] = (await freePorts(3)) as [number, number, number];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const url = `https://127.0.0.1:${apiPort}`;
  const logs = { etcd: join(dir, 'etcd.log'), apiserver: join(dir, 'kube-apiserver.log') };
  const adminToken = randomBytes(24).toString('hex');

  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await stopProcess(apiserver);
      await stopProcess(etcd);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    const { caPem, certFile, keyFile } = await makePki(dir);
    const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saPub = join(dir, 'sa.pub');
    const saKey = join(dir, 'sa.key');
    writeFileSync(saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    // token,user,uid,"groups": static token auth is the simplest admin identity that needs no client cert.
    const tokenFile = join(dir, 'tokens.csv');
    writeFileSync(tokenFile, `${adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });
    let encryptionConfigPath: string | undefined;
    if (opts.encryptionConfig !== undefined) {
      encryptionConfigPath = join(dir, 'encryption-config.yaml');
      writeFileSync(encryptionConfigPath, opts.encryptionConfig, { mode: 0o600 });
    }

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'keyhold-test', server: url, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
      users: [{ name: 'admin', token: adminToken }],
      contexts: [{ name: 'keyhold-test', cluster: 'keyhold-test', user: 'admin' }],
      currentContext: 'keyhold-test',
    });
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });

    etcd = await startProcess(join(bin, 'etcd'), [
      '--name=default',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      // The defaults advertise localhost:2380, which parallel runs would all claim.
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      '--unsafe-no-fsync', // test data: durability across power loss is irrelevant, speed is not
    ], logs.etcd);
    const etcdChild = etcd;
    await waitForProcess('etcd', etcdChild, async () => {
      const response = await fetch(`${etcdUrl}/health`);
      return response.ok && (await response.json() as { health?: string }).health === 'true';
    }, { timeoutMs: 30_000, intervalMs: 250, detail: () => tail(logs.etcd) });

    const rawGet = (path: string, token = adminToken) => new Promise<{ status: number; body: string }>((res, rej) => {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const req = request(url + path, { ca: caPem, headers, timeout: 10_000 }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (d: string) => { body += d; });
        response.on('end', () => res({ status: response.statusCode ?? 0, body }));
        response.on('error', rej);
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', rej);
      req.end();
    });

    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // 1.37 refuses a loopback advertise address with an endpoint reconciler (it would publish
      // 127.0.0.1 as the `kubernetes` service's endpoint); upstream's own test server turns it off too.
      '--endpoint-reconciler-type=none',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${certFile}`,
      `--tls-private-key-file=${keyFile}`,
      `--token-auth-file=${tokenFile}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      // OIDC discovery is served only with an https issuer and an explicit JWKS URI.
      `--service-account-issuer=${url}`,
      `--service-account-jwks-uri=${url}/openid/v1/jwks`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      ...(encryptionConfigPath ? [`--encryption-provider-config=${encryptionConfigPath}`] : []),
      ...(opts.extraApiserverFlags ?? []),
    ];
    const startApiserver = async () => {
      apiserver = await startProcess(join(bin, 'kube-apiserver'), apiserverArgs, logs.apiserver);
      await waitForProcess('kube-apiserver', apiserver, async () => (await rawGet('/readyz')).status === 200, { timeoutMs: 90_000, intervalMs: 250, detail: () => tail(logs.apiserver) });
    };
    await startApiserver();

    return {
      kubeConfig,
      url,
      caPem,
      adminToken,
      etcdUrl,
      dir,
      kubeconfigPath,
      encryptionConfigPath,
      logs,
      async etcdGet(key: string) {
        // etcd's JSON gateway to the gRPC KV API: keys and values are base64.
        const response = await fetch(`${etcdUrl}/v3/kv/range`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
        });
        if (!response.ok) throw new Error(`etcd range ${key}: HTTP ${response.status}: ${await response.text()}`);
        const kv = ((await response.json()) as { kvs?: { value?: string }[] }).kvs?.[0];
        // The gateway omits empty fields: a present key with no `value` holds an empty value.
        return kv === undefined ? undefined : Buffer.from(kv.value ?? '', 'base64');
      },
      rawGet,
      async restartApiserver() {
        if (stopping) throw new Error('control plane is stopped');
        await stopProcess(apiserver, 10_000);
        await startApiserver();
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
