/** `keyhold kms-plugin`: run the KMS v2 plugin, and the direct-mode key operations (versions, rotate, retire). */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { KeyholdError } from '../../errors.js';
import type { HsmSettings } from '../../hsm/config.js';
import { loadHsmSection } from '../../core/config.js';
import { printJson } from '../output.js';
import { wholeNumber } from '../flags.js';

export interface HsmFlags {
  hsmConfig?: string;
  hsmModule?: string;
  hsmTokenLabel?: string;
  hsmSlot?: string;
  hsmPinFile?: string;
  hsmPinEnv?: string;
  keyLabel: string;
}

export interface ServeFlags extends HsmFlags {
  listen: string;
  healthListen?: string;
  server?: string;
  key?: string;
  tokenFile?: string;
  kekMaxUses?: string;
  kekMaxAge?: string;
  logLevel: string;
}

/** PINs come from a file or an environment variable, never from argv. */
function hsmConfig(flags: HsmFlags): HsmSettings {
  // A cluster (members, or an endpoint file + template) is described in a file; the flags name one endpoint.
  if (flags.hsmConfig) return loadHsmSection(flags.hsmConfig);
  if (!flags.hsmModule) throw new KeyholdError('ERR_CONFIG', 'direct mode needs --hsm-module (or use --server and --key)');
  if (!flags.hsmTokenLabel && !flags.hsmSlot) throw new KeyholdError('ERR_CONFIG', 'direct mode needs --hsm-token-label or --hsm-slot');
  const pinEnv = flags.hsmPinEnv ?? (flags.hsmPinFile ? undefined : 'KEYHOLD_HSM_PIN');
  return {
    module: flags.hsmModule,
    ...(flags.hsmSlot ? { slot: flags.hsmSlot } : { tokenLabel: flags.hsmTokenLabel as string }),
    ...(flags.hsmPinFile ? { pinFile: flags.hsmPinFile } : { pinEnv }),
  };
}

function durationMs(text: string): number {
  const match = /^([1-9]\d{0,6})(s|m|h|d)$/.exec(text);
  if (!match) throw new KeyholdError('ERR_CONFIG', `duration must look like 30m, 12h or 7d, got ${JSON.stringify(text)}`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

function serverToken(flags: ServeFlags): string {
  if (flags.tokenFile) return readFileSync(flags.tokenFile, 'utf8').trim();
  const token = process.env.KEYHOLD_TOKEN;
  if (!token) throw new KeyholdError('ERR_CONFIG', 'server mode needs a token: --token-file FILE or KEYHOLD_TOKEN');
  return token;
}

export async function serveKmsPlugin(flags: ServeFlags): Promise<void> {
  const { startKmsPlugin } = await import('../../kubernetes/kms-plugin/plugin.js');
  const logger = pino({ level: flags.logLevel, base: { component: 'kms-plugin' } });
  if (flags.server && !flags.key) throw new KeyholdError('ERR_CONFIG', 'server mode needs --key NAME');
  const plugin = await startKmsPlugin({
    listen: flags.listen,
    healthListen: flags.healthListen,
    rootKey: flags.server
      ? { mode: 'server', address: flags.server, token: serverToken(flags), keyName: flags.key as string }
      : { mode: 'direct', hsm: hsmConfig(flags), keyLabel: flags.keyLabel },
    kek: {
      ...(flags.kekMaxUses ? { maxUses: wholeNumber('--kek-max-uses', flags.kekMaxUses) } : {}),
      ...(flags.kekMaxAge ? { maxAgeMs: durationMs(flags.kekMaxAge) } : {}),
    },
    logger,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      void plugin.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info({}, 'stopped');
}

async function withRootKey<T>(flags: HsmFlags, fn: (hsm: import('../../hsm/types.js').Hsm) => Promise<T>): Promise<T> {
  const { openHsm } = await import('../../hsm/open.js');
  const hsm = await openHsm(hsmConfig(flags), { warn: (m) => process.stderr.write(`keyhold: warning: ${m}\n`) });
  try {
    return await fn(hsm);
  } finally {
    await hsm.close();
  }
}

export async function kmsVersions(flags: HsmFlags): Promise<void> {
  const { describeVersions } = await import('../../kubernetes/kms-plugin/direct-root-key.js');
  await withRootKey(flags, async (hsm) => {
    const versions = describeVersions(hsm, flags.keyLabel).map((v) => ({ version: v.version, key_id: v.keyId }));
    printJson({ key_label: flags.keyLabel, newest: versions.at(-1)?.version ?? null, versions });
  });
}

export async function kmsRotate(flags: HsmFlags): Promise<void> {
  const { rotateDirectRootKey } = await import('../../kubernetes/kms-plugin/direct-root-key.js');
  await withRootKey(flags, async (hsm) => printJson(await rotateDirectRootKey(hsm, flags.keyLabel)));
}

export async function kmsRetire(flags: HsmFlags & { version: string }): Promise<void> {
  const { retireDirectRootKey } = await import('../../kubernetes/kms-plugin/direct-root-key.js');
  await withRootKey(flags, async (hsm) => printJson(await retireDirectRootKey(hsm, flags.keyLabel, wholeNumber('--version', flags.version))));
}
