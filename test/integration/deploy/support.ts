/** What the deploy tests share: where the manifests are, helm, and reading multi-document YAML. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { builtBinaries } from '../../helpers/processes.js';
import { tempDir } from '../../helpers/server.js';

const execFileAsync = promisify(execFile);

/** The repository root, from this compiled file (dist/test/integration/deploy/support.js). */
export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../../..');
export const CHART = join(ROOT, 'deploy/helm/keyhold');
export const KMS_DIR = join(ROOT, 'deploy/kms-plugin');

/** helm from scripts/helm-build.sh: KEYHOLD_HELM_DIR when scripts/test.sh set it, else built now (once). */
export async function helmBinary(): Promise<string> {
  return join(await builtBinaries(join(ROOT, 'scripts/helm-build.sh'), 'KEYHOLD_HELM_DIR', ['helm']), 'helm');
}

let helmHome: string | undefined;

/** Runs helm with its cache, config and data in a temp dir (the tests never touch ~/.config/helm). */
export async function helm(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  helmHome ??= tempDir('keyhold-helm-home-');
  const env = { ...process.env, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data') };
  try {
    const { stdout, stderr } = await execFileAsync(await helmBinary(), args, { env, maxBuffer: 64 * 1024 * 1024 });
    return { ok: true, stdout, stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

/** Every non-empty document of a multi-document YAML text, as objects. */
export function yamlObjects(text: string): KubernetesObject[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0]?.message}`);
    return d.toJS() as KubernetesObject | null;
  }).filter((o): o is KubernetesObject => o !== null && typeof o === 'object');
}

export function yamlFile(path: string): KubernetesObject[] {
  return yamlObjects(readFileSync(path, 'utf8'));
}
