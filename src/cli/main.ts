#!/usr/bin/env node
import { Command, Option } from 'commander';
import { run } from './output.js';

// HSM calls (pkcs11js *Async) and audit fdatasyncs share libuv's pool; its default of 4 threads
// made them queue behind each other. Read by libuv on first use, so set before any I/O.
process.env.UV_THREADPOOL_SIZE ??= '16';

/**
 * Every subcommand loads its implementation lazily, so `keyhold key …` never loads the native
 * modules (pkcs11js, better-sqlite3) that only the server needs.
 */
const program = new Command('keyhold')
  .description('HSM-rooted key management and secret delivery for Kubernetes')
  .version('0.1.0')
  .showHelpAfterError()
  // `kms-plugin` and its subcommands share option names: each command parses its own.
  .enablePositionalOptions();

const NEW_CHAIN_HELP = 'start a new audit chain even though the store remembers one (after a missing, cut or rewritten log); recorded in the new chain and the barrier';
program.command('server').description('run the keyhold server')
  .requiredOption('--config <file>', 'YAML config (KEYHOLD_* environment variables override it)')
  .option('--new-audit-chain', NEW_CHAIN_HELP)
  .action(run(async (o: { config: string; newAuditChain?: boolean }) => (await import('./commands/server.js')).runServer(o)));

program.command('init').description('initialise an empty store: create the HSM seal keys and the root token')
  .requiredOption('--config <file>', 'YAML config')
  .requiredOption('--root-token-file <file>', 'where to write the root token (mode 0600)')
  .option('--seal-data-object', 'keep the wrapped root key as a private data object in the HSM token, not in storage (as seal.dataObject: true)')
  .option('--recovery-shares <n>', 'split a recovery key into N shares, printed once on stdout (2..255); with --recovery-threshold')
  .option('--recovery-threshold <m>', 'how many shares move the seal to a new HSM (keyhold seal migrate); 2..N')
  .action(run(async (o: { config: string; rootTokenFile: string; sealDataObject?: boolean; recoveryShares?: string; recoveryThreshold?: string }) => (await import('./commands/server.js')).runInit(o)));

/** A repeatable option's values, in order. */
const collect = (value: string, previous: string[]) => [...previous, value];

const seal = program.command('seal').description('the seal (the HSM that protects the root key) and the barrier root key');
seal.command('migrate').description('offline (server stopped): move the seal to the HSM of a new config with recovery shares, when the old HSM is lost for good')
  .requiredOption('--config <file>', 'server config naming the store and the NEW HSM')
  .option('--share-file <file>', 'a file holding a recovery share (repeat; without it, shares are read from stdin, one per line)', collect, [] as string[])
  .action(run(async (o: { config: string; shareFile: string[] }) => (await import('./commands/seal.js')).runSealMigrate(o)));

program.command('dev').description('run keyhold with an embedded SoftHSM token and SQLite under a data dir')
  .option('--data-dir <dir>', 'data directory', '.keyhold')
  .option('--listen <host:port>', 'listen address', '127.0.0.1:8200')
  .option('--new-audit-chain', NEW_CHAIN_HELP)
  .action(run(async (o: { dataDir: string; listen: string; newAuditChain?: boolean }) => (await import('./commands/server.js')).runDev(o)));

program.command('backup').description('write a consistent snapshot of the store (still encrypted under the barrier) to a file, while the server serves')
  .requiredOption('--config <file>', 'server config naming the store')
  .requiredOption('--out <file>', 'backup file to write (mode 0600, replaced atomically)')
  .action(run(async (o: { config: string; out: string }) => (await import('./commands/backup.js')).runBackup(o)));
program.command('restore').description('restore a backup into an empty store; needs the HSM that sealed it (recovery shares: not yet)')
  .requiredOption('--in <file>', 'backup file')
  .requiredOption('--config <file>', 'server config naming the empty target store and the HSM')
  .action(run(async (o: { config: string; in: string }) => (await import('./commands/backup.js')).runRestore(o)));

program.command('status').description('show server health (KEYHOLD_ADDR)')
  .action(run(async () => (await import('./commands/admin.js')).status()));

seal.command('rotate-root').description('(KEYHOLD_ADDR, KEYHOLD_TOKEN) rotate the barrier root key: new writes use a new generation; older records are rewritten in the background')
  .action(run(async () => (await import('./commands/admin.js')).rotateRoot()));
seal.command('rotation-status').description('(KEYHOLD_ADDR, KEYHOLD_TOKEN) progress of the background rewrite after a root-key rotation')
  .action(run(async () => (await import('./commands/admin.js')).rotationStatus()));

const key = program.command('key').description('named, versioned keys (KEYHOLD_ADDR, KEYHOLD_TOKEN)');
const keys = async () => (await import('./commands/keys.js')).keyCommands;
key.command('create <name>').description('create a key')
  .addOption(new Option('--type <type>', 'key type').choices(['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']).default('aes256-gcm'))
  .addOption(new Option('--protection <p>', 'hsm: inside the token; wrapped: wrapped by an HSM key').choices(['hsm', 'wrapped']).default('hsm'))
  .option('--deletion-allowed', 'allow deleting the key later')
  .action(run(async (name: string, o) => (await keys()).create(name, o)));
key.command('get <name>').description('describe a key').action(run(async (name: string) => (await keys()).get(name)));
key.command('list').description('list keys').action(run(async () => (await keys()).list()));
key.command('rotate <name>').description('add a new version').action(run(async (name: string) => (await keys()).rotate(name)));
key.command('config <name>').description('retire versions, allow deletion, disable')
  .option('--min-decryption-version <n>').option('--deletion-allowed').option('--no-deletion-allowed').option('--disabled').option('--no-disabled')
  .action(run(async (name: string, o) => (await keys()).config(name, o)));
key.command('delete <name>').description('delete a key (if allowed)').action(run(async (name: string) => (await keys()).delete(name)));
for (const op of ['encrypt', 'sign'] as const) {
  key.command(`${op} <name>`).description(`${op} data from --data, --file or stdin`)
    .option('--data <text>').option('--file <path>').option('--context <text>')
    .action(run(async (name: string, o) => (await keys())[op](name, o)));
}
key.command('decrypt <name> <ciphertext>').description('decrypt to stdout').option('--context <text>')
  .action(run(async (name: string, ct: string, o) => (await keys()).decrypt(name, ct, o)));
key.command('verify <name> <signature>').description('verify data from --data, --file or stdin').option('--data <text>').option('--file <path>')
  .action(run(async (name: string, sig: string, o) => (await keys()).verify(name, sig, o)));
key.command('datakey <name>').description('generate a data key').option('--wrapped-only').option('--bits <bits>', '128 or 256', '256')
  .action(run(async (name: string, o) => (await keys()).datakey(name, o)));

const secret = program.command('secret').description('versioned secrets (KEYHOLD_ADDR, KEYHOLD_TOKEN)');
const secrets = async () => (await import('./commands/secrets.js')).secretCommands;
secret.command('put <path> <pairs...>').description('write key=value pairs (value @file reads a file; "-" reads JSON from stdin)').option('--cas <version>')
  .action(run(async (path: string, pairs: string[], o) => (await secrets()).put(path, pairs, o)));
secret.command('get <path>').description('read a secret').option('--version <n>').option('--field <name>', 'print one field raw')
  .action(run(async (path: string, o) => (await secrets()).get(path, o)));
secret.command('list [folder]').description('list a folder').action(run(async (folder: string | undefined) => (await secrets()).list(folder)));
secret.command('delete <path>').description('soft-delete versions (default: current)').option('--versions <list>')
  .action(run(async (path: string, o) => (await secrets()).delete(path, o)));
secret.command('undelete <path>').requiredOption('--versions <list>').action(run(async (path: string, o) => (await secrets()).undelete(path, o)));
secret.command('destroy <path>').requiredOption('--versions <list>').action(run(async (path: string, o) => (await secrets()).destroy(path, o)));
secret.command('metadata <path>').action(run(async (path: string) => (await secrets()).metadata(path)));

const policy = program.command('policy').description('policies');
policy.command('put <name> <file>').description('create or replace a policy from a YAML/JSON file with {rules: [{path, capabilities}]}')
  .action(run(async (name: string, file: string) => (await import('./commands/admin.js')).policyPut(name, file)));

const token = program.command('token').description('tokens');
token.command('create').description('create a child of $KEYHOLD_TOKEN (prints the token and its accessor)').option('--policy <name...>', 'policies', []).option('--ttl <ttl>', 'seconds or 30m, 12h, 7d (clamped to the parent\'s expiry and the server maximum)')
  .option('--orphan', 'no parent (needs create on sys/tokens/orphan)')
  .action(run(async (o: { policy: string[]; ttl?: string; orphan?: boolean }) => (await import('./commands/admin.js')).tokenCreate(o)));
token.command('lookup').description('look up a token by its accessor').requiredOption('--accessor <accessor>', 'the token\'s accessor (kha.…)')
  .action(run(async (o: { accessor: string }) => (await import('./commands/admin.js')).tokenLookup(o)));
token.command('revoke').description('revoke a token and its descendants by its accessor').requiredOption('--accessor <accessor>', 'the token\'s accessor (kha.…)')
  .action(run(async (o: { accessor: string }) => (await import('./commands/admin.js')).tokenRevoke(o)));

const approval = program.command('approval').description('quorum approval: requests that protected calls opened, and approval policies (KEYHOLD_ADDR, KEYHOLD_TOKEN)');
const approvals = async () => (await import('./commands/approval.js')).approvalCommands;
approval.command('list').description('list requests, newest first ("truncated": true when more matched than the limit)').option('--state <state>', 'pending, approved, denied, cancelled, executed or expired')
  .option('--limit <n>', 'at most this many (default 100, at most 1000)')
  .action(run(async (o: { state?: string; limit?: string }) => (await approvals()).list(o)));
approval.command('sweep').description('delete requests that ended longer than approvals.retentionSeconds ago, now, on the replica answering (it runs by itself too)')
  .action(run(async () => (await approvals()).sweep()));
approval.command('show <id>').description('a request: operation, URL, body, params_sha256 (checked here against what is shown)')
  .action(run(async (id: string) => (await approvals()).show(id)));
approval.command('approve <id>').description('approve with your second factor (KEYHOLD_TOTP_CODE, or typed on stdin); states the params_sha256 computed here from what the server shows')
  .option('--params-sha256 <hex>', 'refuse unless the request hashes to this (the hash you were given out of band)')
  .action(run(async (id: string, o: { paramsSha256?: string }) => (await approvals()).approve(id, o)));
approval.command('deny <id>').description('deny with your second factor (KEYHOLD_TOTP_CODE, or stdin): the request is over').option('--reason <text>')
  .action(run(async (id: string, o: { reason?: string }) => (await approvals()).deny(id, o)));
approval.command('cancel <id>').description('cancel your own pending or approved request').action(run(async (id: string) => (await approvals()).cancel(id)));
approval.command('execute <id>').description('run your approved request, once, exactly as approved; prints the action\'s answer')
  .action(run(async (id: string) => (await approvals()).execute(id)));
const approvalPolicy = approval.command('policy').description('approval policies: M approvals of a group for operations on paths');
approvalPolicy.command('put <name> <file>').description('create or replace from a YAML/JSON file {operations, paths, group, required} ("-": stdin)')
  .action(run(async (name: string, file: string) => (await approvals()).policyPut(name, file)));
approvalPolicy.command('show <name>').action(run(async (name: string) => (await approvals()).policyShow(name)));
approvalPolicy.command('list').action(run(async () => (await approvals()).policyList()));
approvalPolicy.command('delete <name>').action(run(async (name: string) => (await approvals()).policyDelete(name)));

// People (issue 12). `operator` is the Kubernetes operator below: accounts are `account`.
const accounts = async () => import('./commands/accounts.js');
const PASSWORD_FILE_HELP = 'file whose first line is the password ("-": stdin); else KEYHOLD_PASSWORD, else a prompt (never a flag value)';
const account = program.command('account').description('operator accounts: people who log in with a password and TOTP (KEYHOLD_ADDR, KEYHOLD_TOKEN for admin commands)');
account.command('create <name>').description('create an account with an initial password (needs create on sys/operators/<name>; the first one with the root token)')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .action(run(async (name: string, o) => (await accounts()).accountCommands.create(name, o)));
account.command('list').description('list accounts').action(run(async () => (await accounts()).accountCommands.list()));
account.command('show <name>').description('show an account (enrolled, recovery codes left, lockout)').action(run(async (name: string) => (await accounts()).accountCommands.show(name)));
account.command('delete <name>').description('delete an account and revoke its live tokens').action(run(async (name: string) => (await accounts()).accountCommands.delete(name)));
account.command('reset <name>').description('new password; clears the second factor, recovery codes and lockout; revokes live tokens (the person enrols again)')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .action(run(async (name: string, o) => (await accounts()).accountCommands.reset(name, o)));
account.command('enrol <name>').description('begin TOTP enrolment (no token needed): prints the otpauth URI, once; then `keyhold account confirm`')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .option('--qr', 'also draw the QR code on the terminal (stderr)')
  .action(run(async (name: string, o) => (await accounts()).accountCommands.enrol(name, o)));
account.command('confirm <name>').description('confirm TOTP enrolment with a code; prints the recovery codes, once')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .option('--totp <code>', 'the authenticator\'s current code (else prompted)')
  .action(run(async (name: string, o) => (await accounts()).accountCommands.confirm(name, o)));
account.command('password <name>').description('change your own password: the current one, a second factor, and the new one (--new-password-file or KEYHOLD_NEW_PASSWORD or a prompt)')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .option('--new-password-file <file>', 'file whose first line is the new password')
  .option('--totp <code>', 'the authenticator\'s current code (else prompted)')
  .option('--recovery-code', 'use a recovery code (prompted) instead of a TOTP code')
  .action(run(async (name: string, o) => (await accounts()).accountCommands.password(name, o)));
program.command('login <username>').description('log in as an operator with a password and TOTP code; prints a short-lived token (use it as KEYHOLD_TOKEN)')
  .option('--password-file <file>', PASSWORD_FILE_HELP)
  .option('--totp <code>', 'the authenticator\'s current code (else prompted)')
  .option('--recovery-code', 'use a recovery code (prompted) instead of a TOTP code')
  .option('--token-file <file>', 'write the token to this file (mode 0600) instead of printing it')
  .action(run(async (username: string, o) => (await accounts()).login(username, o)));
const group = program.command('group').description('groups: operators and SSO groups mapped to policies (KEYHOLD_ADDR, KEYHOLD_TOKEN)');
group.command('put <name>').description('create or replace a group (only policies you hold can be given to it)')
  .option('--policy <name...>', 'policies', []).option('--member <name...>', 'operator accounts', []).option('--external-group <name...>', 'SSO group names', [])
  .action(run(async (name: string, o) => (await accounts()).groupCommands.put(name, o)));
group.command('show <name>').action(run(async (name: string) => (await accounts()).groupCommands.show(name)));
group.command('list').action(run(async () => (await accounts()).groupCommands.list()));
group.command('delete <name>').action(run(async (name: string) => (await accounts()).groupCommands.delete(name)));
program.command('capabilities <path>').description('what KEYHOLD_TOKEN may do on a path (e.g. keys/payments), and its policies and identity')
  .action(run(async (path: string) => (await accounts()).capabilities(path)));

const audit = program.command('audit').description('the tamper-evident audit log');
const auditCommands = async () => import('./commands/audit.js');
audit.command('verify').description('verify the hash chain and every HSM-signed checkpoint; reports the first altered, removed or reordered entry, and a cut tail')
  .option('--file <path>', 'active audit log file; its rotated siblings (<file>.<12-digit seq>) are read first')
  .option('--config <file>', 'take the path from a server config; with storage.postgres, verify every chain in the database\'s audit table')
  .option('--public-key <pem-file>', 'the audit public key (keyhold audit public-key); required')
  .option('--checkpoint <json-file>', 'the latest checkpoint (keyhold audit checkpoint): detects a log cut before it')
  .action(run(async (o: { file?: string; config?: string; publicKey?: string; checkpoint?: string }) => (await auditCommands()).auditVerify(o)));
audit.command('public-key').description('print the audit checkpoint public key (PEM) of the server at KEYHOLD_ADDR')
  .action(run(async () => (await auditCommands()).auditPublicKey()));
audit.command('checkpoint').description('print the latest audit checkpoint of the server at KEYHOLD_ADDR (JSON, for verify --checkpoint; KEYHOLD_TOKEN with read on sys/audit)')
  .action(run(async () => (await auditCommands()).auditCheckpoint()));

const hsmFlags = (command: Command): Command => command
  .option('--hsm-config <file>', 'YAML/JSON file with an hsm section (members of an HSM cluster, or endpoints.file|configMap + memberTemplate); instead of the other --hsm-* flags')
  .option('--hsm-module <path>', 'PKCS#11 module (.so)')
  .option('--hsm-token-label <label>', 'token label')
  .option('--hsm-slot <id>', 'slot id (instead of the token label)')
  .option('--hsm-pin-file <file>', 'file holding the user PIN')
  .option('--hsm-pin-env <VAR>', 'environment variable holding the user PIN (default KEYHOLD_HSM_PIN)')
  .option('--key-label <label>', 'root key label in the token (versions are <label>/v<N>)', 'keyhold-kms');
const kmsCommands = async () => import('./commands/kms-plugin.js');
const kms = hsmFlags(program.command('kms-plugin').description('Kubernetes KMS v2 plugin (direct: PKCS#11; server: --server URL --key NAME)').enablePositionalOptions())
  .option('--listen <socket>', 'unix socket: /path/kms.sock, unix:///path, or @abstract-name')
  .option('--health-listen <host:port>', 'serve /healthz, /readyz, /livez and /metrics')
  .option('--server <url>', 'server mode: keyhold server address')
  .option('--key <name>', 'server mode: an aes256-gcm key of the server')
  .option('--token-file <file>', 'server mode: file holding the keyhold token (else KEYHOLD_TOKEN)')
  .option('--kek-max-uses <n>', 'new local KEK after this many Encrypts (default 2^21)')
  .option('--kek-max-age <duration>', 'new local KEK after this long (default 7d)')
  .option('--log-level <level>', 'log level', 'info')
  .action(run(async (o) => {
    if (!o.listen) throw new Error('--listen is required');
    await (await kmsCommands()).serveKmsPlugin(o);
  }));
hsmFlags(kms.command('versions').description('direct mode: list the root key versions and their key_ids'))
  .action(run(async (o) => (await kmsCommands()).kmsVersions(o)));
hsmFlags(kms.command('rotate').description('direct mode: add a new root key version (running plugins report its key_id at their next Status)'))
  .action(run(async (o) => (await kmsCommands()).kmsRotate(o)));
hsmFlags(kms.command('retire').description('direct mode: destroy an old root key version, after re-encrypting everything under it'))
  .requiredOption('--version <n>', 'version to destroy')
  .action(run(async (o) => (await kmsCommands()).kmsRetire(o)));

// The launcher (keyhold.cts) sends `keyhold agent` straight to the CommonJS build of src/agent/cli.ts,
// without commander or the ESM loader. This entry is for `node dist/src/cli/main.js agent …` and for help.
program.command('agent').description('in-pod agent: render secrets into files, or `agent exec -- cmd` for env values (see keyhold agent --help)')
  .helpOption(false).allowUnknownOption().allowExcessArguments().passThroughOptions().argument('[args...]')
  .action(async (args: string[]) => { process.exitCode = await (await import('../agent/cli.js')).main(args); });

const webhookCommands = async () => import('./commands/webhook.js');
const webhook = program.command('webhook').description('mutating admission webhook that injects the keyhold agent into opted-in pods').enablePositionalOptions()
  .option('--listen <host:port>', 'HTTPS listen address', '0.0.0.0:8443')
  .option('--tls-cert <file>', 'serving certificate (PEM; re-read when it changes)')
  .option('--tls-key <file>', 'serving key (PEM)')
  .option('--self-managed-tls', 'make a CA and leaf in memory, publish the CA as caBundle, renew the leaf at 2/3 of its life')
  .option('--dns-name <name...>', 'self-managed: names in the serving certificate', [])
  .option('--webhook-config <name>', 'self-managed: the MutatingWebhookConfiguration to publish the CA to', 'keyhold-injector')
  .option('--agent-image <image>', 'image with the keyhold CLI for the injected containers')
  .option('--server-address <url>', 'keyhold server address as pods reach it')
  .option('--refresh-seconds <n>', 'sidecar refresh period', '300')
  .option('--log-level <level>', 'log level', 'info')
  .action(run(async (o) => {
    // Checked here, not with requiredOption: commander would demand them of `webhook manifests` too.
    for (const flag of ['agentImage', 'serverAddress'] as const) if (!o[flag]) throw new Error(`--${flag.replace(/[A-Z]/g, (c: string) => `-${c.toLowerCase()}`)} is required`);
    await (await webhookCommands()).serveWebhookCommand(o);
  }));
webhook.command('manifests').description('print the MutatingWebhookConfiguration (failurePolicy Fail, no self-deadlock)')
  .requiredOption('--ca-file <file>', 'CA that signs the webhook\'s serving certificate')
  .option('--namespace <ns>', 'namespace the webhook runs in (never injected)', 'keyhold')
  .option('--service <name>', 'Service in front of the webhook', 'keyhold-webhook')
  .option('--url <url>', 'instead of a Service: the webhook\'s URL')
  .action(run(async (o) => (await webhookCommands()).printManifests(o)));

const operatorCommands = async () => import('./commands/operator.js');
const operator = program.command('operator').description('Kubernetes operator: discovers HSM cluster members (HSMCluster), keeps the healthy ones in a ConfigMap, advertises keyhold.io/hsm on nodes');
operator.command('run').description('run the operator (in-cluster service account, or --kubeconfig / KUBECONFIG)')
  .option('--kubeconfig <file>', 'kubeconfig file (default: in-cluster, else KUBECONFIG or ~/.kube/config)')
  .option('--namespace <ns>', 'namespace of the HSMClusters and their ConfigMaps (in-cluster default: the pod\'s)')
  .option('--period <seconds>', 'probe period for HSMClusters that set none', '30')
  .option('--allow-command <path>', 'a program HSMCluster command sources may run (repeatable; none by default)', collect, [])
  .option('--node-label <label>', 'label marking nodes with a local HSM ("true" or a unit count)', 'keyhold.io/hsm')
  .option('--no-node-resource', 'do not advertise keyhold.io/hsm on nodes (no node permissions needed)')
  .option('--log-level <level>', 'pino log level', 'info')
  .action(run(async (o) => (await operatorCommands()).runOperatorCommand(o)));
operator.command('manifests').description('print the HSMCluster CRD, the operator\'s least-privilege RBAC and its Deployment')
  .option('--namespace <ns>', 'namespace the operator runs in', 'keyhold')
  .option('--image <image>', 'image with the keyhold CLI', 'ghcr.io/keyhold/keyhold:0.1.0')
  .option('--period <seconds>', 'default probe period')
  .option('--allow-command <path>', 'a program command sources may run (repeatable)', collect, [])
  .option('--crd-only', 'print only the CRD')
  .action(run(async (o) => (await operatorCommands()).printOperatorManifests(o)));

await program.parseAsync(process.argv);
