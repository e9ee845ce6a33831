/**
 * The audit log: the latest entries, and the verifier's verdict on the whole chain (hashes,
 * checkpoints' HSM signatures, anchored on the latest checkpoint). A broken chain is the first
 * thing on the page, with the entry that breaks it. On PostgreSQL the log is one chain per server
 * process, each judged on its own: the page lists them, and every entry names its chain.
 */
import { get } from '../api';
import { Badge, Facts, Loading, Message, useLoad, when } from '../components';
import type { AuditChainVerdict, AuditCheckpointView, AuditEntry, AuditVerification } from '../types';

const checkpoint = (c: AuditCheckpointView | undefined) => (c ? `entry ${c.seq}, signs head ${c.head_seq}, ${when(c.signed_at)}` : '—');
const broken = (f: { bad_seq: number; reason: string; truncated?: boolean }) => `${f.reason}${f.truncated ? ' (the log was cut)' : ''}`;

function Verdict({ v }: { v: AuditVerification }) {
  const chains = v.chains;
  if (!v.ok && v.failure) {
    const f = v.failure;
    return (
      <div class="message message-error verdict" role="alert" id="audit-verdict">
        <strong>Audit chain BROKEN</strong> at entry {f.bad_seq}
        {f.chain ? ` of chain ${f.chain}: ` : ` (line ${f.line}${f.file ? ` of ${f.file}` : ''}): `}
        {broken(f)}.{' '}
        {chains ? `${chains.filter((c) => !c.ok).length} of ${chains.length} chains broken.` : `The ${v.entries} entries before it verified.`}
      </div>
    );
  }
  return (
    <div class="message message-success verdict" role="status" id="audit-verdict">
      <strong>Audit chain{chains ? 's' : ''} verified:</strong> {chains ? `${chains.length} chains, ` : ''}{v.entries} entries, {v.checkpoints ?? 0} signed checkpoints
      {v.anchored ? (chains ? ', this replica\'s chain anchored on what it wrote' : ', anchored on the latest checkpoint') : ''}.
    </div>
  );
}

function Chains({ chains }: { chains: AuditChainVerdict[] }) {
  return (
    <div class="scroll" tabIndex={0} aria-label="Audit chains table (scrollable)">
      <table class="log" id="audit-chains">
        <caption>Chains in the audit table, one per server process</caption>
        <thead><tr><th scope="col">Chain</th><th scope="col">Writer</th><th scope="col">Entries</th><th scope="col">Checkpoints</th><th scope="col">Last checkpoint</th><th scope="col">State</th></tr></thead>
        <tbody>
          {chains.map((c) => (
            <tr key={c.chain}>
              <th scope="row"><code>{c.chain}</code></th>
              <td>{c.this_replica ? 'this replica' : 'another process'}{c.anchored ? ' (anchored)' : ''}</td>
              <td>{c.entries}</td><td>{c.checkpoints}</td><td>{checkpoint(c.last_checkpoint)}</td>
              <td><Badge ok={c.ok} yes="verified" no="BROKEN" />{c.failure && ` at entry ${c.failure.bad_seq}: ${broken(c.failure)}`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Audit() {
  const verdict = useLoad(() => get<AuditVerification>('/v1/sys/audit/verify'));
  const entries = useLoad(() => get<{ entries: AuditEntry[]; unreadable: number }>('/v1/sys/audit/entries?limit=50'));
  const reload = () => { verdict.reload(); entries.reload(); };
  const v = verdict.data;
  const chained = entries.data?.entries.some((e) => e.chain !== undefined) === true;
  return (
    <div>
      <section aria-labelledby="verify-h">
        <h2 id="verify-h">Verification</h2>
        {verdict.error && <Message kind="error">{verdict.error}</Message>}
        {!v && !verdict.error && <Loading what="the verification" />}
        {v && (
          <>
            <Verdict v={v} />
            <Facts items={[
              ['Checked', when(v.checked_at)],
              ['Chain', <Badge ok={v.ok} yes="intact" no="broken" />],
              ...(v.chains ? [] : [
                ['Last checkpoint', checkpoint(v.last_checkpoint)],
                ['Entries after the last signed head', v.unsigned_entries !== undefined ? String(Math.max(0, v.unsigned_entries - 1)) : '—'],
              ] as Array<[string, string]>),
            ]} />
            {v.chains && <Chains chains={v.chains} />}
          </>
        )}
        <button type="button" onClick={reload}>Verify again</button>
      </section>
      <section aria-labelledby="entries-h">
        <h2 id="entries-h">Latest entries</h2>
        {entries.error && <Message kind="error">{entries.error}</Message>}
        {entries.data && entries.data.unreadable > 0 && <Message kind="error">{entries.data.unreadable} line(s) of the log are not valid entries.</Message>}
        {entries.data && (
          <div class="scroll" tabIndex={0} aria-label="Audit entries table (scrollable)">
            <table class="log">
              <caption>The last {entries.data.entries.length} entries, newest first</caption>
              <thead><tr>{chained && <th scope="col">Chain</th>}<th scope="col">Seq</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Operation</th><th scope="col">Path</th><th scope="col">Who</th><th scope="col">Outcome</th></tr></thead>
              <tbody>
                {[...entries.data.entries].reverse().map((e) => (
                  <tr key={`${e.chain ?? ''}-${e.seq}-${e.hash ?? ''}`}>
                    {chained && <td><code title={e.chain}>{e.chain?.slice(0, 8)}</code></td>}
                    <th scope="row">{e.seq}</th><td class="time">{e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</td><td>{e.type}</td><td>{e.operation ?? '—'}</td><td>{e.path ?? '—'}</td>
                    <td>{e.actor?.selectors?.join(' ') ?? e.actor?.accessor ?? '—'}</td>
                    <td>{e.outcome ? `${e.outcome.status}${e.outcome.code ? ` ${e.outcome.code}` : ''}` : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}
