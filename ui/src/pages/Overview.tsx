/** The server at a glance: seal, HSM members and health, audit state, this replica (GET /v1/sys/health). */
import { Badge, Facts, Loading, Message, useLoad, when } from '../components';
import type { Health } from '../types';

async function health(): Promise<Health> {
  // 503 answers carry the same body (sealed, HSM down, audit failed): show it rather than an error.
  const response = await fetch('/v1/sys/health', { cache: 'no-store' });
  const body = (await response.json()) as Health;
  return body;
}

export function Overview() {
  const h = useLoad(health);
  if (h.error) return <Message kind="error">{h.error}</Message>;
  if (!h.data) return <Loading what="health" />;
  const d = h.data;
  return (
    <div class="grid">
      <section class="card" aria-labelledby="seal-h">
        <h2 id="seal-h">Seal</h2>
        <Facts items={[
          ['State', <Badge ok={!d.sealed} yes="unsealed" no="sealed" />],
          ['Root key generation', d.root_key ? String(d.root_key.generation) : '—'],
          ['Root key rewrite', d.root_key?.rewriting ? 'in progress' : 'idle'],
          ['Version', d.version],
          ['Uptime', `${d.uptime_seconds} s`],
        ]} />
      </section>
      <section class="card" aria-labelledby="hsm-h">
        <h2 id="hsm-h">HSM</h2>
        <Facts items={[
          ['Health', <Badge ok={d.hsm.ok} yes="answering" no="failing" />],
          ['Token', d.hsm.token],
          ['Probe latency', `${d.hsm.latency_ms} ms`],
          ...(d.hsm.error ? [['Error', d.hsm.error] as [string, string]] : []),
        ]} />
        {d.hsm.members && (
          <div class="scroll" tabIndex={0} aria-label="HSM cluster members (scrollable)"><table>
            <caption>Cluster members</caption>
            <thead><tr><th scope="col">Member</th><th scope="col">State</th><th scope="col">Latency</th><th scope="col">Failures</th><th scope="col">In flight</th></tr></thead>
            <tbody>
              {d.hsm.members.map((m) => (
                <tr key={m.name}><th scope="row">{m.name}</th><td>{m.state}</td><td>{m.latency_ms} ms</td><td>{m.failures}</td><td>{m.in_flight}</td></tr>
              ))}
            </tbody>
          </table></div>
        )}
      </section>
      <section class="card" aria-labelledby="audit-h">
        <h2 id="audit-h">Audit log</h2>
        <Facts items={[
          ['Writable', <Badge ok={d.audit.ok} yes="yes" no="no" />],
          ...(d.audit.reason ? [['Reason', d.audit.reason] as [string, string]] : []),
          ['Chain', d.audit.chain ?? '—'],
          ['Rotated files', String(d.audit.rotated_files)],
          ['Last checkpoint', d.audit.last_checkpoint ? `entry ${d.audit.last_checkpoint.seq} (signs head ${d.audit.last_checkpoint.head_seq}) at ${when(d.audit.last_checkpoint.time)}` : 'none yet'],
        ]} />
        <p><a href="#/audit">Verify the chain and checkpoints</a></p>
      </section>
      <section class="card" aria-labelledby="replica-h">
        <h2 id="replica-h">Replica</h2>
        <Facts items={[
          ['This replica', d.replica.id],
          ['Leader', d.replica.leader ? 'yes' : 'no'],
          ['Background jobs', d.replica.background_jobs.length ? d.replica.background_jobs.join(', ') : 'none here'],
          ['Kubernetes login', d.kubernetes.configured ? <Badge ok={d.kubernetes.ok} yes="live" no="not live" /> : 'not configured'],
        ]} />
      </section>
    </div>
  );
}
