/**
 * An operator's login: the account's check (store.ts), the per-address lockout, then a
 * short-lived token whose identity is the operator and whose policies are those of the operator's
 * groups. Each token is indexed under its operator (`sys/operator-tokens/<name>/<id>`, written
 * and deleted with the token), so a reset or deletion of the account revokes its live tokens.
 */
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { GroupStore } from '../groups/store.js';
import { OPERATOR_SELECTOR_PREFIX } from '../identity/person.js';
import type { TokenRecord, TokenStore } from '../identity/tokens.js';
import { addressLocked, DEFAULT_ADDRESS_LOCKOUT, MemoryLockout, type LockoutSettings } from './lockout.js';
import type { OperatorStore } from './store.js';
import type { OperatorSummary, SecondFactor } from './types.js';

export const DEFAULT_OPERATOR_TOKEN_TTL_SECONDS = 3600;

export interface OperatorLoginOptions {
  tokenTtlSeconds?: number;
  addressLockout?: LockoutSettings;
}

export interface OperatorLoginResult {
  token: string;
  record: TokenRecord;
  groups: string[];
  operator: OperatorSummary;
}

export class OperatorLogins {
  /**
   * Per client address, in this process's memory: a restart forgets it, and each replica counts
   * its own. It slows one source guessing across many accounts; the per-account lock (in the
   * barrier) is the one that holds fleet-wide and across restarts.
   */
  readonly addresses: MemoryLockout;
  private readonly ttlSeconds: number;

  constructor(
    private readonly operators: OperatorStore,
    private readonly groups: Pick<GroupStore, 'policiesFor'>,
    private readonly tokens: TokenStore,
    private readonly tokenIndex: BarrierView,
    options: OperatorLoginOptions = {},
  ) {
    this.addresses = new MemoryLockout(options.addressLockout ?? DEFAULT_ADDRESS_LOCKOUT);
    this.ttlSeconds = options.tokenTtlSeconds ?? DEFAULT_OPERATOR_TOKEN_TTL_SECONDS;
  }

  /**
   * Runs an attempt from the client whose key is `address`: refused while it is locked; a failed
   * check (ERR_LOGIN_FAILED, ERR_SECOND_FACTOR_INVALID) counts against it, a success resets it.
   * `address` is the client's key (api/client-address.ts `clientKey`: the client behind trusted
   * proxies, an IPv6 client by its /64), the one the flood limit counts it under too.
   */
  async fromAddress<T>(address: string, attempt: () => Promise<T>): Promise<T> {
    const locked = this.addresses.lockedFor(address);
    if (locked > 0) throw addressLocked(locked);
    try {
      const result = await attempt();
      this.addresses.succeeded(address);
      return result;
    } catch (err) {
      if (isKeyholdError(err, 'ERR_LOGIN_FAILED') || isKeyholdError(err, 'ERR_SECOND_FACTOR_INVALID')) this.addresses.failed(address);
      throw err;
    }
  }

  /** Password + second factor → a token of the operator's groups' policies (ERR_NO_POLICIES when they give none). */
  async login(username: string, password: string, second: SecondFactor, address: string): Promise<OperatorLoginResult> {
    const operator = await this.fromAddress(address, () => this.operators.authenticate(username, password, second));
    const { groups, policies } = await this.groups.policiesFor({ operator: operator.name });
    if (policies.length === 0) {
      throw new KeyholdError('ERR_NO_POLICIES', `operator "${operator.name}" is in no group that grants a policy; ask an administrator to add them to one`, { details: { reason: 'no-policies' } });
    }
    const { token, record } = await this.tokens.create(
      { policies, ttlSeconds: this.ttlSeconds, displayName: `${OPERATOR_SELECTOR_PREFIX}${operator.name}`, selectors: [`${OPERATOR_SELECTOR_PREFIX}${operator.name}`] },
      (r) => [this.tokenIndex.write(`${operator.name}/${r.id}`, {})],
    );
    // A reset or deletion that committed after the check above, and listed the account's tokens
    // before this one was indexed, did not revoke it: look again now that it is indexed (a later
    // list finds it), and take it back if the account changed meanwhile.
    const now = await this.operators.describe(operator.name).catch(() => null);
    if (now?.passwordChangedAt !== operator.passwordChangedAt || now.createdAt !== operator.createdAt) {
      await this.tokens.revoke(record.id);
      throw new KeyholdError('ERR_LOGIN_FAILED', 'login failed: wrong username, password or second factor', { details: { reason: 'account-changed' } });
    }
    return { token, record, groups, operator };
  }

  /** Revokes every live login token of `name` (with the tokens made from them); how many went. */
  async revokeTokens(name: string): Promise<number> {
    let revoked = 0;
    for (const key of await this.tokenIndex.list(`${name}/`)) revoked += await this.tokens.revoke(key.slice(name.length + 1));
    return revoked;
  }
}
