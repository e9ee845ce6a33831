/**
 * The HSMCluster custom resource (keyhold.io/v1alpha1, namespaced): where to discover the members
 * of one HSM cluster, how to probe them, and the ConfigMap to keep the healthy ones in. The
 * structural schema validates what it can; spec.ts checks the rest again (an old CRD, or a
 * resource written before a schema change, must not crash the operator).
 */
import { ENDPOINT_NAME } from '../../hsm/endpoint-set.js';

export const GROUP = 'keyhold.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'HSMCluster';
export const PLURAL = 'hsmclusters';
/** The extended resource advertised on nodes with a local HSM, and the default label marking them. */
export const HSM_RESOURCE = 'keyhold.io/hsm';
export const DEFAULT_NODE_LABEL = 'keyhold.io/hsm';
/** A ConfigMap name (a DNS subdomain): the schema's pattern, and spec.ts's check of a resource the schema did not see. */
export const CONFIGMAP_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const endpoint = {
  type: 'object',
  required: ['name', 'address'],
  properties: {
    name: { type: 'string', pattern: ENDPOINT_NAME.source, description: 'stable member name (`${name}` in the server\'s hsm.memberTemplate)' },
    address: { type: 'string', minLength: 1, maxLength: 1024, description: 'e.g. unix:path=/run/p11-kit/a.sock, tcp:host=10.0.0.5,port=2225 or 10.0.0.5:2225' },
  },
};

const source = {
  type: 'object',
  description: 'exactly one of static, dns, command',
  maxProperties: 1,
  minProperties: 1,
  properties: {
    static: {
      type: 'object', required: ['endpoints'],
      properties: { endpoints: { type: 'array', maxItems: 256, items: endpoint } },
    },
    dns: {
      type: 'object', required: ['name', 'type'],
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 253 },
        type: { type: 'string', enum: ['A', 'AAAA', 'SRV'] },
        resolver: { type: 'string', description: 'host:port of the DNS server to ask (default: the pod\'s resolv.conf)', maxLength: 300 },
        port: { type: 'integer', minimum: 1, maximum: 65535, description: 'the members\' port, for A/AAAA' },
        addressTemplate: { type: 'string', maxLength: 300, description: 'how an address is written, from ${host} and ${port} (default ${host}:${port})' },
      },
    },
    command: {
      type: 'object', required: ['command'],
      properties: {
        command: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', maxLength: 4096 }, description: 'argv, run without a shell; prints [{"name","address"}] or {"endpoints":[...]}' },
        timeoutSeconds: { type: 'integer', minimum: 1, maximum: 300 },
      },
    },
  },
};

export function hsmClusterCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}`, labels: { 'app.kubernetes.io/name': 'keyhold' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { plural: PLURAL, singular: 'hsmcluster', kind: KIND, listKind: `${KIND}List`, shortNames: ['hsmc'] },
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [
          { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
          { name: 'Healthy', type: 'integer', jsonPath: '.status.healthyMembers' },
          { name: 'Members', type: 'integer', jsonPath: '.status.totalMembers' },
          { name: 'ConfigMap', type: 'string', jsonPath: '.spec.configMap.name' },
          { name: 'Last probe', type: 'date', jsonPath: '.status.lastProbeTime' },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
        ],
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['spec'],
            properties: {
              spec: {
                type: 'object',
                required: ['sources', 'configMap'],
                properties: {
                  sources: { type: 'array', minItems: 1, maxItems: 16, items: source },
                  probe: {
                    type: 'object',
                    properties: {
                      kind: { type: 'string', enum: ['connect'], default: 'connect', description: 'connect: a TCP or unix-socket connection is accepted' },
                      periodSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
                      timeoutSeconds: { type: 'integer', minimum: 1, maximum: 60 },
                    },
                  },
                  configMap: {
                    type: 'object', required: ['name'],
                    properties: { name: { type: 'string', pattern: CONFIGMAP_NAME.source } },
                  },
                  nodeResource: {
                    type: 'object',
                    description: `advertise ${HSM_RESOURCE} on the nodes these labels select (nodes with a local HSM)`,
                    required: ['nodeSelector'],
                    properties: {
                      nodeSelector: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
                      count: { type: 'integer', minimum: 1, maximum: 64, description: 'units per node (default 1)' },
                    },
                  },
                },
              },
              status: {
                type: 'object',
                properties: {
                  observedGeneration: { type: 'integer' },
                  lastProbeTime: { type: 'string', format: 'date-time' },
                  healthyMembers: { type: 'integer' },
                  totalMembers: { type: 'integer' },
                  members: {
                    type: 'array',
                    items: {
                      type: 'object',
                      required: ['name', 'address', 'healthy'],
                      properties: {
                        name: { type: 'string' }, address: { type: 'string' }, healthy: { type: 'boolean' },
                        latencyMs: { type: 'integer' }, lastProbe: { type: 'string', format: 'date-time' }, lastError: { type: 'string' },
                      },
                    },
                  },
                  conditions: {
                    type: 'array',
                    'x-kubernetes-list-type': 'map',
                    'x-kubernetes-list-map-keys': ['type'],
                    items: {
                      type: 'object',
                      required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
                      properties: {
                        type: { type: 'string' },
                        status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
                        observedGeneration: { type: 'integer' },
                        lastTransitionTime: { type: 'string', format: 'date-time' },
                        reason: { type: 'string' },
                        message: { type: 'string', maxLength: 32768 },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      }],
    },
  };
}
