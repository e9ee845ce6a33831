/**
 * The audit log: the latest entries, and the verifier's verdict on the whole chain (hashes,
 * checkpoints' HSM signatures, anchored on the latest checkpoint). A broken chain is the first
 * thing on the page, with the entry that breaks it.
 */
import { get } from '../api';
import { Badge, Facts, Loading, Message, useLoad, when } from '../components';
import type { AuditEntry, AuditVerification } from '../types';

function Verdict({ v }: { v: AuditVerification }) {
  if (!v.ok && v.failure) {
    return (
      <div class="message message-error verdict" role="alert" id="audit-verdict">
        <strong>Audit chain BROKEN</strong> at entry {v.failure.bad_seq} (line {v.failure.line}{v.failure.file ? ` of ${v.failure.file}` : ''}):
        {' '}{v.failure.reason}{v.failure.truncated ? ' (the log was cut)' : ''}. The {v.entries} entries before it verified.
      </div>
    );
  }
  return (
    <div class="message message-success verdict" role="status" id="audit-verdict">
      <strong>Audit chain verified:</strong> {v.entries} entries, {v.checkpoints ?? 0} signed checkpoints{v.anchored ? ', anchored on the latest checkpoint' : ''}.
    </div>
  );
}

export function Audit() {
  const verdict = useLoad(() => get<AuditVerification>('/v1/sys/audit/verify'));
  const entries = useLoad(() => get<{ entries: AuditEntry[]; unreadable: number }>('/v1/sys/audit/entries?limit=50'));
  const reload = () => { verdict.reload(); entries.reload(); };
  return (
    <div>
      <section aria-labelledby="verify-h">
        <h2 id="verify-h">Verification</h2>
        {verdict.error && <Message kind="error">{verdict.error}</Message>}
        {!verdict.data && !verdict.error && <Loading what="the verification" />}
        {verdict.data && (
          <>
            <Verdict v={verdict.data} />
            <Facts items={[
              ['Checked', when(verdict.data.checked_at)],
              ['Chain', <Badge ok={verdict.data.ok} yes="intact" no="broken" />],
              ['Last checkpoint', verdict.data.last_checkpoint ? `entry ${verdict.data.last_checkpoint.seq}, signs head ${verdict.data.last_checkpoint.head_seq}, ${when(verdict.data.last_checkpoint.signed_at)}` : '—'],
              ['Entries after the last signed head', verdict.data.unsigned_entries !== undefined ? String(Math.max(0, verdict.data.unsigned_entries - 1)) : '—'],
            ]} />
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
              <thead><tr><th scope="col">Seq</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Operation</th><th scope="col">Path</th><th scope="col">Who</th><th scope="col">Outcome</th></tr></thead>
              <tbody>
                {[...entries.data.entries].reverse().map((e) => (
                  <tr key={`${e.seq}-${e.hash ?? ''}`}>
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
