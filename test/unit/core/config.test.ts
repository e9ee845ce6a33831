/** The flood-limit settings: api.unauthenticatedRateLimit in the file, or KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=MAX/SECONDS. */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigFile, loadHsmSection } from '../../../src/core/config.js';
import { isKeyholdError } from '../../../src/errors.js';
import { tempDir } from '../../helpers/temp.js';

/**
 * A writer of config files in a temp dir of this describe block (removed after it): the minimal
 * valid config (SQLite, a file audit log, one HSM) plus `extra` YAML.
 */
function configFiles(prefix: string): (extra: string) => string {
  const dir = tempDir(prefix);
  after(() => rmSync(dir, { recursive: true, force: true }));
  return (extra) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, `storage: { sqlite: { path: k.db } }\naudit: { path: a.log }\nhsm: { module: /x.so, tokenLabel: t, pinEnv: P }\n${extra}`);
    return path;
  };
}

describe('config: unauthenticated rate limit', () => {
  const file = configFiles('keyhold-config-');

  it('is absent by default (the server then uses 100 per 10 s)', () => {
    assert.equal(loadConfigFile(file(''), {}).api?.unauthenticatedRateLimit, undefined);
  });

  it('reads api.unauthenticatedRateLimit from the file', () => {
    assert.deepEqual(loadConfigFile(file('api: { unauthenticatedRateLimit: { max: 5, windowSeconds: 2 } }\n'), {}).api?.unauthenticatedRateLimit, { max: 5, windowSeconds: 2 });
  });

  it('takes KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=MAX/SECONDS over the file, keeping the other api settings', () => {
    const config = loadConfigFile(file('api: { bodyLimitBytes: 2048, unauthenticatedRateLimit: { max: 5, windowSeconds: 2 } }\n'), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: '300/60' });
    assert.deepEqual(config.api, { bodyLimitBytes: 2048, unauthenticatedRateLimit: { max: 300, windowSeconds: 60 } });
  });

  for (const bad of ['100', '100/0', '0/10', 'a/b', '10/10s']) {
    it(`refuses KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=${bad} with ERR_CONFIG`, () => {
      assert.throws(() => loadConfigFile(file(''), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: bad }), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'));
    });
  }

  it('refuses unknown fields and out-of-range values in the file', () => {
    for (const api of ['{ max: 5, windowSeconds: 2, burst: 1 }', '{ max: 5 }', '{ max: 5, windowSeconds: 0.5 }']) {
      assert.throws(() => loadConfigFile(file(`api: { unauthenticatedRateLimit: ${api} }\n`), {}), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'), api);
    }
  });
});

describe('config: api.trustedProxies (reverse proxies whose X-Forwarded-For is believed)', () => {
  const file = configFiles('keyhold-config-proxies-');
  /** The ERR_CONFIG message of a refused config. */
  const refusal = (path: string, env: NodeJS.ProcessEnv = {}): string => {
    try {
      loadConfigFile(path, env);
    } catch (err) {
      assert.ok(isKeyholdError(err, 'ERR_CONFIG'), `not ERR_CONFIG: ${String(err)}`);
      return (err as Error).message;
    }
    assert.fail(`accepted: ${path}`);
  };

  it('is absent by default: nobody is trusted', () => {
    assert.equal(loadConfigFile(file(''), {}).api?.trustedProxies, undefined);
  });

  it('reads addresses and CIDRs of either family from the file, and KEYHOLD_TRUSTED_PROXIES (comma-separated) over it', () => {
    assert.deepEqual(loadConfigFile(file('api: { trustedProxies: [10.0.0.0/8, 127.0.0.1, "fd00::/8"] }\n'), {}).api?.trustedProxies, ['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
    const config = loadConfigFile(file('api: { bodyLimitBytes: 2048, trustedProxies: [10.0.0.0/8] }\n'), { KEYHOLD_TRUSTED_PROXIES: '127.0.0.1/32, ::1' });
    assert.deepEqual(config.api, { bodyLimitBytes: 2048, trustedProxies: ['127.0.0.1/32', '::1'] });
  });

  it('refuses trusting everybody, in every spelling, saying why', () => {
    for (const all of ['[0.0.0.0/0]', '["::/0"]', '[10.0.0.0/8, 0.0.0.0/0]']) assert.match(refusal(file(`api: { trustedProxies: ${all} }\n`)), /trusts every address/, all);
    for (const all of ['true', 'false', '1', '2']) assert.match(refusal(file(`api: { trustedProxies: ${all} }\n`)), /api\.trustedProxies must be a list of the proxies' addresses or CIDRs/, all);
    assert.match(refusal(file(''), { KEYHOLD_TRUSTED_PROXIES: '0.0.0.0/0' }), /api\.trustedProxies\[0\] "0\.0\.0\.0\/0" trusts every address/);
  });

  it('refuses a bad entry naming it and its position: not an address, a bad prefix, host bits set', () => {
    assert.match(refusal(file('api: { trustedProxies: [10.0.0.0/8, loopback] }\n')), /api\.trustedProxies\[1\] "loopback" is not an IP address or CIDR/);
    assert.match(refusal(file('api: { trustedProxies: [10.0.0.0/33] }\n')), /\[0\] "10\.0\.0\.0\/33" has an invalid prefix length/);
    assert.match(refusal(file('api: { trustedProxies: [10.1.2.3/8] }\n')), /write 10\.0\.0\.0\/8/);
    assert.match(refusal(file('api: { trustedProxies: ["*"] }\n')), /is not an IP address or CIDR/);
    assert.match(refusal(file('api: { trustedProxies: "10.0.0.0/8" }\n')), /\/api\/trustedProxies/);
    assert.match(refusal(file('api: { trustedProxies: [""] }\n')), /\/api\/trustedProxies\/0/);
    assert.match(refusal(file('api: { trustedProxies: [{ cidr: 10.0.0.0/8 }] }\n')), /\/api\/trustedProxies\/0/);
    assert.match(refusal(file(''), { KEYHOLD_TRUSTED_PROXIES: '10.0.0.0/8,' }), /\/api\/trustedProxies\/1/);
    assert.match(refusal(file(''), { KEYHOLD_TRUSTED_PROXIES: 'garbage' }), /\[0\] "garbage" is not an IP address or CIDR/);
  });
});

describe('config: the hsm section (one endpoint, members, endpoint file)', () => {
  const dir = tempDir('keyhold-config-hsm-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (hsm: string) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, `storage: { sqlite: { path: k.db } }\naudit: { path: a.log }\nhsm: ${hsm}\n`);
    return path;
  };
  const refused = (hsm: string, message: RegExp) => assert.throws(() => loadConfigFile(file(hsm), {}), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG') && message.test(err.message), hsm);

  it('reads members (env per member, PIN files relative to the config folder)', () => {
    const config = loadConfigFile(file('{ members: [{ name: a, module: /x.so, env: { P11_KIT_SERVER_ADDRESS: "unix:path=/a" }, tokenLabel: t, pinFile: pin }, { name: b, module: /x.so, slot: "1", pinEnv: P }] }'), {});
    assert.deepEqual(config.hsm.members?.map((m) => m.name), ['a', 'b']);
    assert.deepEqual(config.hsm.members?.[0]?.env, { P11_KIT_SERVER_ADDRESS: 'unix:path=/a' });
    assert.equal(config.hsm.members?.[0]?.pinFile, join(dir, 'pin'));
  });

  it('reads an endpoint file with a member template', () => {
    const config = loadConfigFile(file('{ endpoints: { file: endpoints.json }, memberTemplate: { module: /x.so, env: { P11_KIT_SERVER_ADDRESS: "${address}" }, tokenLabel: t, pinEnv: P } }'), {});
    assert.equal(config.hsm.endpoints?.file, join(dir, 'endpoints.json'));
  });

  it('reads a watched ConfigMap (kubeconfig relative to the config folder), in the server config and in the KMS plugin\'s --hsm-config file', () => {
    const section = '{ endpoints: { configMap: { namespace: keyhold, name: hsm-endpoints, kubeconfig: kc.yaml } }, memberTemplate: { module: /x.so, env: { P11_KIT_SERVER_ADDRESS: "${address}" }, tokenLabel: t, pinFile: pin } }';
    const config = loadConfigFile(file(section), {});
    assert.deepEqual(config.hsm.endpoints?.configMap, { namespace: 'keyhold', name: 'hsm-endpoints', kubeconfig: join(dir, 'kc.yaml') });
    const hsmFile = join(dir, 'hsm.yaml');
    writeFileSync(hsmFile, `hsm: ${section}\n`);
    assert.equal(loadHsmSection(hsmFile).endpoints?.configMap?.kubeconfig, join(dir, 'kc.yaml'));
    refused('{ endpoints: { configMap: { namespace: keyhold, name: x, extra: 1 } }, memberTemplate: { module: /x.so, tokenLabel: t, pinEnv: P } }', /invalid configuration/);
  });

  it('refuses two forms at once, a member without token or PIN source, duplicate names, an endpoint file without template', () => {
    refused('{ module: /x.so, tokenLabel: t, pinEnv: P, members: [{ name: a, module: /x.so, tokenLabel: t, pinEnv: P }] }', /exactly one of/);
    refused('{ members: [{ name: a, module: /x.so, pinEnv: P }] }', /members\[a\]\.tokenLabel/);
    refused('{ members: [{ name: a, module: /x.so, tokenLabel: t }] }', /members\[a\]\.pinEnv/);
    refused('{ members: [{ name: a, module: /x.so, tokenLabel: t, pinEnv: P }, { name: a, module: /y.so, tokenLabel: t, pinEnv: P }] }', /unique/);
    refused('{ endpoints: { file: e.json } }', /memberTemplate/);
    refused('{ members: [{ name: "a b", module: /x.so, tokenLabel: t, pinEnv: P }] }', /invalid configuration/);
  });
});

describe('config: operators (issue 12)', () => {
  const file = configFiles('keyhold-config-ops-');
  const refused = (err: unknown) => isKeyholdError(err, 'ERR_CONFIG');

  it('reads the section, and the KEYHOLD_OPERATORS_* overrides over it', () => {
    const config = loadConfigFile(file('operators: { tokenTtlSeconds: 900, lockout: { account: { threshold: 3, baseSeconds: 10, maxSeconds: 60 } } }\n'), {
      KEYHOLD_OPERATORS_ADDRESS_LOCKOUT: '10/5/50', KEYHOLD_OPERATORS_TOKEN_TTL_SECONDS: '1800',
    });
    assert.deepEqual(config.operators, { tokenTtlSeconds: 1800, lockout: { account: { threshold: 3, baseSeconds: 10, maxSeconds: 60 }, address: { threshold: 10, baseSeconds: 5, maxSeconds: 50 } } });
  });

  it('refuses malformed settings with ERR_CONFIG', () => {
    for (const bad of ['operators: { tokenTtlSeconds: 10 }', 'operators: { hashConcurrency: 0 }', 'operators: { lockout: { account: { threshold: 3, baseSeconds: 60, maxSeconds: 10 } } }', 'operators: { other: 1 }', 'operators: { totpIssuer: "a:b" }']) {
      assert.throws(() => loadConfigFile(file(`${bad}\n`), {}), refused, bad);
    }
    for (const bad of ['5/30', 'a/b/c', '0/1/1']) assert.throws(() => loadConfigFile(file(''), { KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT: bad }), refused, bad);
  });
});

describe('config: approvals (limits, retention)', () => {
  const file = configFiles('keyhold-config-approvals-');
  /** Refused with ERR_CONFIG, and the message names the field. */
  const refusedNaming = (field: string) => (err: unknown) => isKeyholdError(err, 'ERR_CONFIG') && err.message.includes(field);

  it('reads the section, and the KEYHOLD_APPROVALS_* overrides over it', () => {
    const config = loadConfigFile(file('approvals: { ttlSeconds: 600, maxOpenPerRequester: 5, maxOpen: 50, retentionSeconds: 86400, sweepIntervalSeconds: 300 }\n'), {
      KEYHOLD_APPROVALS_MAX_OPEN: '80', KEYHOLD_APPROVALS_RETENTION_SECONDS: '0',
    });
    assert.deepEqual(config.approvals, { ttlSeconds: 600, maxOpenPerRequester: 5, maxOpen: 80, retentionSeconds: 0, sweepIntervalSeconds: 300 });
    assert.deepEqual(loadConfigFile(file(''), {
      KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER: '7', KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS: '60', KEYHOLD_APPROVALS_TTL_SECONDS: '60',
    }).approvals, { maxOpenPerRequester: 7, sweepIntervalSeconds: 60, ttlSeconds: 60 });
  });

  it('takes the extremes of each range', () => {
    const config = loadConfigFile(file('approvals: { maxOpenPerRequester: 1000, maxOpen: 10000, retentionSeconds: 316224000, sweepIntervalSeconds: 86400 }\n'), {});
    assert.equal(config.approvals?.maxOpen, 10_000);
    assert.equal(loadConfigFile(file('approvals: { maxOpenPerRequester: 1, maxOpen: 1, retentionSeconds: 0, sweepIntervalSeconds: 1 }\n'), {}).approvals?.maxOpen, 1);
  });

  const badValues: Array<[string, string]> = [];
  for (const field of ['maxOpenPerRequester', 'maxOpen', 'sweepIntervalSeconds']) {
    for (const v of ['0', '-1', '1.5', '"10"', 'null', 'true', '[1]', '1e100', '99999999999']) badValues.push([field, v]);
  }
  for (const v of ['-1', '1.5', '"10"', 'null', '1e100', '99999999999']) badValues.push(['retentionSeconds', v]);
  badValues.push(['maxOpenPerRequester', '1001'], ['maxOpen', '10001'], ['sweepIntervalSeconds', '86401'], ['retentionSeconds', '316224001'], ['other', '1']);
  for (const [field, v] of badValues) {
    it(`refuses approvals.${field}: ${v}, naming it`, () => {
      assert.throws(() => loadConfigFile(file(`approvals: { ${field}: ${v} }\n`), {}), refusedNaming(field === 'other' ? 'approvals' : `approvals/${field}`));
    });
  }

  for (const [name, v] of [['KEYHOLD_APPROVALS_MAX_OPEN', '0'], ['KEYHOLD_APPROVALS_MAX_OPEN', '-3'], ['KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER', '2.5'], ['KEYHOLD_APPROVALS_RETENTION_SECONDS', '30d'], ['KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS', '0x10'], ['KEYHOLD_APPROVALS_MAX_OPEN', '1'.repeat(16)]] as const) {
    it(`refuses ${name}=${v}`, () => {
      assert.throws(() => loadConfigFile(file(''), { [name]: v }), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'));
    });
  }

  it('refuses a per-person limit above the total, naming both', () => {
    assert.throws(() => loadConfigFile(file('approvals: { maxOpenPerRequester: 30, maxOpen: 20 }\n'), {}), (err: unknown) => refusedNaming('maxOpenPerRequester')(err) && refusedNaming('maxOpen (20)')(err));
    // One alone is capped by the other's default at run time (src/core/runtime.ts), not refused.
    assert.doesNotThrow(() => loadConfigFile(file('approvals: { maxOpen: 5 }\n'), {}));
  });
});
