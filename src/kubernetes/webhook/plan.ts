/**
 * What a pod asks for, read from its annotations (Vault-injector style, under keyhold.io/):
 *
 *   keyhold.io/inject: "true"                    opt in
 *   keyhold.io/role: payments                    Kubernetes login role
 *   keyhold.io/secret-<file>: <path>[#field]     one file per secret in /keyhold/secrets
 *   keyhold.io/template-<file>: "user={{ app/db#user }}"   a file rendered from a template
 *   keyhold.io/mode-<file>: "0440"               file mode (default keyhold.io/mode, else 0400)
 *   keyhold.io/containers: "api,worker"          which containers mount the files (default all)
 *   keyhold.io/refresh: "true"                   native sidecar that keeps files fresh
 *   keyhold.io/command-<container>: '["/app"]'   the container's command, when env mode needs it
 *                                                and the pod spec does not say it
 */
import type { V1Pod } from '@kubernetes/client-node';
import { ENV_REFERENCE_PREFIX, envReference, parseSecretRef, templateRefs } from '../../client/secret-ref.js';

export const PREFIX = 'keyhold.io/';
export const STATUS_ANNOTATION = `${PREFIX}status`;

export interface SecretFile {
  name: string;
  /** `<path>[#field]`, or undefined for a template file. */
  ref?: string;
  /** Template text with `{{ <path>#<field> }}` placeholders. */
  template?: string;
  mode: string;
}

export interface InjectionPlan {
  role: string;
  files: SecretFile[];
  /** Containers that mount /keyhold/secrets (undefined: all). */
  containers?: string[];
  refresh: boolean;
  /** Containers with keyhold: env values, and the command each will run under `agent exec`. */
  envContainers: Array<{ name: string; command: string[] }>;
}

/** A refusal the webhook returns to kube-apiserver (and so to kubectl) verbatim. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const ROLE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MODE = /^0?[0-7]{3}$/;

/** undefined when the pod did not opt in; a plan when it did; PlanError when it asked for something invalid. */
export function planFor(pod: V1Pod): InjectionPlan | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[`${PREFIX}inject`] !== 'true') return undefined;
  const role = annotations[`${PREFIX}role`];
  if (!role || !ROLE.test(role)) throw new PlanError(`keyhold.io/role must name a Kubernetes login role ([A-Za-z0-9._-], up to 64), got ${JSON.stringify(role ?? '')}`);
  const defaultMode = annotations[`${PREFIX}mode`] ?? '0400';
  if (!MODE.test(defaultMode)) throw new PlanError(`keyhold.io/mode must be an octal file mode like 0400, got ${JSON.stringify(defaultMode)}`);

  const files: SecretFile[] = [];
  for (const [key, value] of Object.entries(annotations)) {
    const isTemplate = key.startsWith(`${PREFIX}template-`);
    if (!isTemplate && !key.startsWith(`${PREFIX}secret-`)) continue;
    const name = key.slice((isTemplate ? `${PREFIX}template-` : `${PREFIX}secret-`).length);
    if (isTemplate) {
      if (!FILE_NAME.test(name)) throw new PlanError(`${key}: the file name after "template-" must be [A-Za-z0-9._-] (up to 63), not starting with a dot`);
      if (annotations[`${PREFIX}secret-${name}`] !== undefined) throw new PlanError(`${key}: file ${name} is also a keyhold.io/secret-${name}; a file is one or the other`);
      let refs;
      try {
        refs = templateRefs(value);
      } catch (err) {
        throw new PlanError(`${key}: ${(err as Error).message}`);
      }
      if (refs.length === 0) throw new PlanError(`${key}: the template has no {{ <path>#<field> }} placeholder`);
      if (Buffer.byteLength(value) > 16 * 1024) throw new PlanError(`${key}: templates are limited to 16 KiB`);
      const mode = annotations[`${PREFIX}mode-${name}`] ?? defaultMode;
      if (!MODE.test(mode)) throw new PlanError(`keyhold.io/mode-${name} must be an octal file mode like 0440, got ${JSON.stringify(mode)}`);
      files.push({ name, template: value, mode: mode.padStart(4, '0') });
      continue;
    }
    if (!FILE_NAME.test(name)) throw new PlanError(`${key}: the file name after "secret-" must be [A-Za-z0-9._-] (up to 63), not starting with a dot`);
    try {
      parseSecretRef(value);
    } catch {
      throw new PlanError(`${key}: ${JSON.stringify(value)} is not <path>[#field]`);
    }
    const mode = annotations[`${PREFIX}mode-${name}`] ?? defaultMode;
    if (!MODE.test(mode)) throw new PlanError(`keyhold.io/mode-${name} must be an octal file mode like 0440, got ${JSON.stringify(mode)}`);
    files.push({ name, ref: value, mode: mode.padStart(4, '0') });
  }
  files.sort((a, b) => a.name.localeCompare(b.name));

  const containerNames = (pod.spec?.containers ?? []).map((c) => c.name);
  let containers: string[] | undefined;
  const listed = annotations[`${PREFIX}containers`];
  if (listed !== undefined) {
    containers = listed.split(',').map((c) => c.trim()).filter((c) => c !== '');
    const unknown = containers.filter((c) => !containerNames.includes(c));
    if (unknown.length > 0) throw new PlanError(`keyhold.io/containers names containers the pod does not have: ${unknown.join(', ')}`);
  }

  const envContainers: InjectionPlan['envContainers'] = [];
  for (const container of pod.spec?.containers ?? []) {
    const references = (container.env ?? []).filter((e) => typeof e.value === 'string' && e.value.startsWith(ENV_REFERENCE_PREFIX));
    if (references.length === 0) continue;
    // Refused here, not when `agent exec` would crash-loop on it.
    for (const e of references) {
      try {
        envReference(e.value as string);
      } catch (err) {
        throw new PlanError(`container "${container.name}" env ${e.name}: ${(err as Error).message}`);
      }
    }
    let command = container.command;
    const annotated = annotations[`${PREFIX}command-${container.name}`];
    if (!command?.length && annotated !== undefined) {
      try {
        const parsed: unknown = JSON.parse(annotated);
        if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((p) => typeof p === 'string')) throw new Error('not a JSON array of strings');
        command = parsed as string[];
      } catch (err) {
        throw new PlanError(`keyhold.io/command-${container.name} must be a JSON array of strings like ["/app","--serve"]: ${(err as Error).message}`);
      }
    }
    if (!command?.length) {
      throw new PlanError(`container "${container.name}" has environment values keyhold must resolve (keyhold:<path>#<field>), so its command must be known: `
        + `set spec.containers[].command to the image's entrypoint, or add the annotation keyhold.io/command-${container.name}: '["/entrypoint","arg"]'. `
        + 'keyhold never asks a registry for an image\'s ENTRYPOINT.');
    }
    envContainers.push({ name: container.name, command: [...command, ...(container.args ?? [])] });
  }
  if (files.length === 0 && envContainers.length === 0) {
    throw new PlanError('keyhold.io/inject is "true" but the pod asks for nothing: add keyhold.io/secret-<file>: <path>[#field] or keyhold.io/template-<file> annotations, or keyhold:<path>#<field> env values');
  }
  return { role, files, ...(containers ? { containers } : {}), refresh: annotations[`${PREFIX}refresh`] === 'true', envContainers };
}
