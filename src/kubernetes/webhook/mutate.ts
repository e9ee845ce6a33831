/**
 * The mutation, as a pure function of the pod, its namespace and the webhook's options: a JSON
 * Patch (RFC 6902) or a refusal. Re-invoking it on an injected pod changes nothing.
 */
import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { PlanError, STATUS_ANNOTATION, planFor, type InjectionPlan } from './plan.js';

export interface InjectorOptions {
  /** Image holding the keyhold CLI (the agent). */
  agentImage: string;
  /** keyhold server address as pods reach it. */
  serverAddress: string;
  /** Lifetime of the projected token (kubelet refreshes it at 80%). */
  tokenExpirationSeconds?: number;
  /** Sidecar refresh period. */
  refreshSeconds?: number;
}

export type JsonPatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

export type Mutation =
  | { kind: 'skip'; reason: string }
  | { kind: 'patch'; patch: JsonPatchOp[] }
  | { kind: 'refuse'; message: string };

/** Namespaces the webhook never touches, whatever the registration says. */
export const PROTECTED_NAMESPACES = new Set(['kube-system', 'kube-public']);
export const SECRETS_DIR = '/keyhold/secrets';
export const TOKEN_DIR = '/var/run/secrets/keyhold';
export const BIN_DIR = '/keyhold/bin';
const TOKEN_VOLUME = 'keyhold-token';
const SECRETS_VOLUME = 'keyhold-secrets';
const BIN_VOLUME = 'keyhold-bin';

const escape = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** Non-root, read-only, no capabilities: the agent needs nothing else. */
function hardened(): V1Container['securityContext'] {
  return {
    runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Measured use is a few millicores and about 45 MB; requests stay small so injection does not inflate scheduling. */
const RESOURCES: V1Container['resources'] = { requests: { cpu: '5m', memory: '48Mi' }, limits: { memory: '96Mi' } };

function agentContainer(name: string, plan: InjectionPlan, options: InjectorOptions, sidecar: boolean): V1Container {
  const command = ['keyhold', 'agent', '--role', plan.role, '--jwt-file', `${TOKEN_DIR}/token`, '--dest', SECRETS_DIR];
  for (const f of plan.files) {
    if (f.template !== undefined) command.push('--template', `${f.name}=${Buffer.from(f.template).toString('base64')}:${f.mode}`);
    else command.push('--secret', `${f.name}=${f.ref}:${f.mode}`);
  }
  if (sidecar) command.push('--refresh', String(options.refreshSeconds ?? 300));
  return {
    name,
    image: options.agentImage,
    command,
    env: [{ name: 'KEYHOLD_ADDR', value: options.serverAddress }],
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }, { name: SECRETS_VOLUME, mountPath: SECRETS_DIR }],
    resources: RESOURCES,
    securityContext: hardened(),
    ...(sidecar ? { restartPolicy: 'Always' } : {}),
  };
}

export function mutate(pod: V1Pod, namespace: string, options: InjectorOptions): Mutation {
  if (PROTECTED_NAMESPACES.has(namespace)) return { kind: 'skip', reason: `namespace ${namespace} is never injected` };
  if (pod.metadata?.annotations?.[STATUS_ANNOTATION] === 'injected') return { kind: 'skip', reason: 'already injected' };
  let plan: InjectionPlan | undefined;
  try {
    plan = planFor(pod);
  } catch (err) {
    if (err instanceof PlanError) return { kind: 'refuse', message: `keyhold: ${err.message}` };
    throw err;
  }
  if (!plan) return { kind: 'skip', reason: 'not annotated keyhold.io/inject: "true"' };

  const patch: JsonPatchOp[] = [];
  const spec = pod.spec ?? { containers: [] };
  const taken = new Set([...(spec.volumes ?? []).map((v) => v.name), ...(spec.initContainers ?? []).map((c) => c.name), ...spec.containers.map((c) => c.name)]);
  for (const name of [TOKEN_VOLUME, SECRETS_VOLUME, BIN_VOLUME, 'keyhold-agent-init', 'keyhold-agent']) {
    if (taken.has(name)) return { kind: 'refuse', message: `keyhold: the pod already has a volume or container named ${name}; keyhold needs that name` };
  }

  // Volumes: the projected token, the in-memory secrets directory, and (env mode) the agent binary.
  const volumes: V1Volume[] = [
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: 'keyhold', expirationSeconds: options.tokenExpirationSeconds ?? 600, path: 'token' } }] } },
    { name: SECRETS_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
  if (plan.envContainers.length > 0) volumes.push({ name: BIN_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } });
  if (spec.volumes?.length) for (const v of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: v });
  else patch.push({ op: 'add', path: '/spec/volumes', value: volumes });

  // Init containers, first in order: render secrets (and copy the agent for env mode) before anything else starts.
  const inits: V1Container[] = [];
  if (plan.files.length > 0) inits.push(agentContainer('keyhold-agent-init', plan, options, false));
  if (plan.envContainers.length > 0) {
    // The agent image's contract: a self-contained `keyhold` executable at /usr/local/bin/keyhold
    // (not built by this repository yet; see docs/kubernetes-injection.md), copied for `agent exec`.
    inits.push({
      name: 'keyhold-bin', image: options.agentImage, command: ['cp', '/usr/local/bin/keyhold', `${BIN_DIR}/keyhold`],
      volumeMounts: [{ name: BIN_VOLUME, mountPath: BIN_DIR }], resources: RESOURCES, securityContext: hardened(),
    });
  }
  if (plan.refresh && plan.files.length > 0) inits.push(agentContainer('keyhold-agent', plan, options, true));
  if (spec.initContainers?.length) inits.forEach((c, i) => patch.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  else patch.push({ op: 'add', path: '/spec/initContainers', value: inits });

  // App containers: the secrets volume (read-only), and env mode's exec wrapper.
  spec.containers.forEach((container, index) => {
    const mounts: V1VolumeMount[] = [];
    if (plan.files.length > 0 && (!plan.containers || plan.containers.includes(container.name))) mounts.push({ name: SECRETS_VOLUME, mountPath: SECRETS_DIR, readOnly: true });
    const env = plan.envContainers.find((e) => e.name === container.name);
    if (env) {
      mounts.push({ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }, { name: BIN_VOLUME, mountPath: BIN_DIR, readOnly: true });
      patch.push({ op: container.command ? 'replace' : 'add', path: `/spec/containers/${index}/command`, value: [`${BIN_DIR}/keyhold`, 'agent', 'exec', '--role', plan.role, '--jwt-file', `${TOKEN_DIR}/token`, '--', ...env.command] });
      if (container.args) patch.push({ op: 'replace', path: `/spec/containers/${index}/args`, value: [] });
      const addr = { name: 'KEYHOLD_ADDR', value: options.serverAddress };
      patch.push({ op: 'add', path: `/spec/containers/${index}/env/-`, value: addr });
    }
    if (mounts.length === 0) return;
    if (container.volumeMounts?.length) for (const m of mounts) patch.push({ op: 'add', path: `/spec/containers/${index}/volumeMounts/-`, value: m });
    else patch.push({ op: 'add', path: `/spec/containers/${index}/volumeMounts`, value: mounts });
  });

  if (pod.metadata?.annotations) patch.push({ op: 'add', path: `/metadata/annotations/${escape(STATUS_ANNOTATION)}`, value: 'injected' });
  else patch.push({ op: 'add', path: '/metadata/annotations', value: { [STATUS_ANNOTATION]: 'injected' } });
  return { kind: 'patch', patch };
}
