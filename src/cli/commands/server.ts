import { loadConfigFile } from '../../core/config.js';
import { prepareDev, readRootToken } from '../../core/dev.js';
import { startRuntime } from '../../core/runtime.js';
import { serve, untilSignal } from '../../core/serve.js';
import { printRecoveryShares, recoveryFlags } from './seal.js';

export async function runServer(options: { config: string; newAuditChain?: boolean }): Promise<void> {
  const config = loadConfigFile(options.config);
  const server = await serve(config, { newAuditChain: options.newAuditChain === true, warn: (m) => process.stderr.write(`keyhold: warning: ${m}\n`) });
  // Handlers first: a supervisor may send SIGTERM as soon as it reads the address.
  const stopped = untilSignal(server);
  process.stderr.write(`keyhold: serving on ${server.address}\n`);
  await stopped;
}

export async function runInit(options: { config: string; rootTokenFile: string; sealDataObject?: boolean; recoveryShares?: string; recoveryThreshold?: string }): Promise<void> {
  // Checked before the config is even read: bad counts initialise nothing.
  const recovery = recoveryFlags(options);
  const config = loadConfigFile(options.config);
  if (options.sealDataObject) config.seal = { ...config.seal, dataObject: true };
  const runtime = await startRuntime(config, {
    initRootTokenFile: options.rootTokenFile,
    ...(recovery ? { recovery: { ...recovery, deliver: printRecoveryShares } } : {}),
  });
  await runtime.close();
  process.stderr.write(`keyhold: initialised; root token written to ${options.rootTokenFile} (mode 0600)\n`);
}

export async function runDev(options: { dataDir: string; listen: string; newAuditChain?: boolean }): Promise<void> {
  const setup = prepareDev(options.dataDir, options.listen);
  const server = await serve(setup.config, { initRootTokenFile: setup.rootTokenFile, newAuditChain: options.newAuditChain === true });
  const stopped = untilSignal(server); // before "listening on", as in runServer
  const tokenHint = readRootToken(setup.rootTokenFile) ? `export KEYHOLD_TOKEN=$(cat ${setup.rootTokenFile})` : '(no root token file)';
  process.stderr.write([
    `keyhold dev: data in ${setup.dataDir} (SoftHSM token "${setup.config.hsm.tokenLabel}", ${setup.config.storage.postgres ? 'PostgreSQL' : 'SQLite'}, audit log)`,
    `keyhold dev: listening on ${server.address}`,
    `  export KEYHOLD_ADDR=${server.address}`,
    `  ${tokenHint}`,
    'keyhold dev: Ctrl-C to stop',
    '',
  ].join('\n'));
  await stopped;
  process.stderr.write('keyhold dev: stopped\n');
}
