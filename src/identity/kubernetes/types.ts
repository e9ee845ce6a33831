/** Kubernetes service-account login: what an operator configures, as stored (inside the barrier). */
import type { ImagePolicy } from './attestation.js';

export interface KubernetesAuthConfig {
  /** The cluster's service-account issuer (`iss` of its tokens), e.g. https://kubernetes.default.svc. */
  issuer: string;
  /** kube-apiserver URL, for the JWKS (when no keys are given) and the live pod and service-account checks. */
  apiServerUrl: string;
  /** PEM CA bundle that signs kube-apiserver's serving certificate. */
  caPem?: string;
  /** The token keyhold uses against kube-apiserver (get pods, get service accounts, watch pods, read the JWKS). Secret: never returned. */
  reviewerJwt?: string;
  /** PEM public keys that sign service-account tokens; when absent the JWKS is read from kube-apiserver. */
  publicKeysPem?: string[];
  /** Pull credentials for registries that do not serve anonymously, by registry host. Passwords are never returned. */
  registryCredentials?: RegistryCredential[];
}

export interface RegistryCredential {
  /** Registry host as written in image references (`registry.example.com`, `127.0.0.1:5000`, `docker.io`). */
  host: string;
  username: string;
  password: string;
}

export interface KubernetesRole {
  name: string;
  /** Namespaces allowed to log in (globs: `*` matches any run of characters). */
  boundNamespaces: string[];
  /** Service accounts allowed to log in (globs). */
  boundServiceAccounts: string[];
  /** Required `aud` of the token. */
  audience: string;
  /** Refuse tokens issued longer ago than this (seconds); undefined: only `exp` counts. */
  maxTokenAgeSeconds?: number;
  /** TTL of the keyhold token issued at login (seconds). */
  ttlSeconds: number;
  policies: string[];
  /** Require a pod-bound token (TokenRequest with boundObjectRef to a Pod); default true. */
  requirePodBound: boolean;
  /** What the pod must run: digests allowed or signed by a trusted key (needs a pod-bound token). */
  imagePolicy?: ImagePolicy;
}

/** Who logged in, as selectors (shown in audit records). */
export interface KubernetesIdentity {
  namespace: string;
  serviceAccount: string;
  serviceAccountUid: string;
  podName?: string;
  podUid?: string;
  selectors: string[];
}
