import type pg from 'pg';
import { KeyholdError } from '../errors.js';

/**
 * The schema, as an append-only list of migrations: entry i takes the schema from version i to
 * i + 1. Never edit a released entry; add one. `schema_version` holds the version a database is at.
 *
 * Keys are bytea (the UTF-8 bytes of the logical key), not text: bytea compares as raw bytes
 * whatever the database's collation, which is the Storage contract's order, and holds every
 * character (text cannot hold U+0000).
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE kv (key bytea PRIMARY KEY, value bytea NOT NULL)`,
  // The audit chains (docs/design-notes.md, "Audit in the write's transaction"): one per writer
  // process, each entry the exact canonical line the file log would hold.
  `CREATE TABLE audit (chain text NOT NULL, seq bigint NOT NULL, entry text NOT NULL, PRIMARY KEY (chain, seq))`,
];

/** Any constant: the advisory lock that makes replicas starting together migrate one at a time. */
const MIGRATION_LOCK = 0x6b68_0001;

/** Creates or upgrades the schema, in one transaction; refuses a database a newer keyhold has upgraded. */
export async function migrate(client: pg.ClientBase, migrations: readonly string[] = MIGRATIONS): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
    const rows = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows;
    let version = rows[0]?.version ?? 0;
    if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    if (version > migrations.length) {
      throw new KeyholdError('ERR_STORAGE', `the database schema is at version ${version}, newer than this keyhold knows (${migrations.length}): upgrade keyhold`);
    }
    for (; version < migrations.length; version++) await client.query(migrations[version] as string);
    await client.query('UPDATE schema_version SET version = $1', [version]);
    await client.query('COMMIT');
    return version;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
