import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { readPin } from '../../helpers/softhsm.js';
import { startP11KitFleet, type P11KitFleet } from '../../helpers/p11kit.js';

// The fleet helper itself, checked with OpenSC's pkcs11-tool through each member's client module.
let fleet: P11KitFleet;
before(async () => { fleet = await startP11KitFleet(2); });
after(async () => { await fleet?.stop(); });

function listMechanisms(member: P11KitFleet['members'][number]) {
  return spawnSync('pkcs11-tool', ['--module', member.module, '-M'], { env: { ...process.env, ...member.config.env }, encoding: 'utf8', timeout: 30_000 });
}

test('every member serves the one token, without AES-GCM through the hop; a killed member refuses and a restarted one serves', async () => {
  for (const member of fleet.members) {
    const out = listMechanisms(member);
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, /RSA-PKCS-OAEP/);
    assert.doesNotMatch(out.stdout, /AES-GCM/);
  }
  const [a, b] = fleet.members as [P11KitFleet['members'][number], P11KitFleet['members'][number]];
  const pin = readPin(fleet.token);
  const made = spawnSync('pkcs11-tool', ['--module', a.module, '--login', '--pin', pin, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'fleet-check', '--id', '01'], { env: { ...process.env, ...a.config.env }, encoding: 'utf8', timeout: 30_000 });
  assert.equal(made.status, 0, made.stderr);
  const seen = spawnSync('pkcs11-tool', ['--module', b.module, '--login', '--pin', pin, '-O'], { env: { ...process.env, ...b.config.env }, encoding: 'utf8', timeout: 30_000 });
  assert.match(seen.stdout, /fleet-check/);
  await a.kill();
  assert.notEqual(listMechanisms(a).status, 0);
  assert.equal(listMechanisms(b).status, 0);
  await a.start();
  assert.equal(listMechanisms(a).status, 0);
});
