import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { writeAtomically } from '../../../src/agent/agent.js';
import { tempDir } from '../../helpers/temp.js';

it('writeAtomically: final content and mode, no temp files left, unsafe names refused', () => {
  const dir = tempDir('keyhold-atomic-');
  writeAtomically(dir, 'secret', 'one', 0o400);
  writeAtomically(dir, 'secret', 'two', 0o440);
  assert.equal(readFileSync(join(dir, 'secret'), 'utf8'), 'two');
  assert.equal(statSync(join(dir, 'secret')).mode & 0o777, 0o440);
  assert.deepEqual(readdirSync(dir), ['secret']);
  for (const bad of ['../x', '.hidden', 'a/b', '']) assert.throws(() => writeAtomically(dir, bad, "x", 0o400), /invalid file name/, bad);
});
