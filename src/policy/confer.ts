/**
 * The one rule for conferring policies: a caller can only hand out policies it holds itself, and
 * only a holder of `root` can hand out `root`. Every route that gives policies to someone else calls
 * this: token creation (`POST /v1/tokens`), Kubernetes role writes, and anything added later that
 * maps an identity to policies (a new auth method's roles, groups, ...) MUST call it too, or a
 * caller with write access to that mapping can make itself root.
 *
 * Pure and synchronous: the caller's policies are data, the decision needs no I/O.
 */
import { KeyholdError } from '../errors.js';
import { ROOT_POLICY_NAME } from './evaluate.js';

/** What the rule needs to know about the caller: its token's policies and identity. */
export interface Conferrer {
  readonly policies: readonly string[];
  /** Identity selectors (`k8s:ns:a`, ...): set for a pod's login token and the tokens it made. */
  readonly selectors?: readonly string[] | undefined;
}

export interface ConferTarget {
  /**
   * True when the policies go to other identities (a login role maps pods to them); false when
   * they go to a token that inherits the caller's own identity (a child token).
   */
  readonly otherIdentities: boolean;
  /** Names among the conferred policies whose rules use identity placeholders (`{{k8s.namespace}}`). */
  readonly placeholderPolicies?: ReadonlySet<string>;
}

/**
 * Throws ERR_PERMISSION_DENIED unless `caller` may confer every policy in `policies` to `target`.
 *
 * - `root` only from a root holder; a root holder may confer anything.
 * - Otherwise every name must be one the caller holds (by name: a policy's rules may change later,
 *   and the holder sees those changes too, so "holds" stays true).
 * - A placeholder policy grants each holder its own identity's scope. A caller bound to an
 *   identity holds only its own scope of it, so it may pass it to a child (which inherits that
 *   identity) but not to a role, where it would grant other identities' scopes.
 */
export function assertCanConfer(caller: Conferrer, policies: readonly string[], target: ConferTarget = { otherIdentities: false }): void {
  const callerIsRoot = caller.policies.includes(ROOT_POLICY_NAME);
  if (callerIsRoot) return;
  if (policies.includes(ROOT_POLICY_NAME)) {
    throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied: only a holder of the root policy can confer root');
  }
  const notHeld = policies.filter((p) => !caller.policies.includes(p));
  if (notHeld.length > 0) {
    throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: cannot confer policies the caller does not hold: ${notHeld.join(', ')}`);
  }
  if (target.otherIdentities && caller.selectors !== undefined && caller.selectors.length > 0 && target.placeholderPolicies) {
    const scoped = policies.filter((p) => target.placeholderPolicies?.has(p));
    if (scoped.length > 0) {
      throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: an identity-bound caller cannot confer identity-scoped policies to other identities: ${scoped.join(', ')}`);
    }
  }
}

/**
 * Changing how identities are proven (an auth method's issuer, keys, API server) confers every
 * policy that method's roles grant, now and later: whoever sets the issuer can sign a login for
 * any role. Only a holder of `root` may, whatever else its policies grant on the config path.
 */
export function assertCanChangeIdentitySource(caller: Conferrer, what: string): void {
  if (caller.policies.includes(ROOT_POLICY_NAME)) return;
  throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: only a holder of the root policy can change ${what}: it decides who may log in to every role`);
}
