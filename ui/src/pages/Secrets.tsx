/**
 * Secrets: folders and names, a secret's version metadata, and its value only on demand (a
 * separate GET the audit log records, refused without `read`). A revealed value lives in this
 * page's state only, and is dropped on Hide or when the page changes.
 */
import { useEffect, useState } from 'preact/hooks';
import { describeError, encodePath, get } from '../api';
import { Facts, Loading, Message, useLoad, when } from '../components';

interface Metadata {
  current_version: number; oldest_version: number; max_versions: number; cas_required: boolean; created_at: string; updated_at: string;
  versions: Record<string, { created_at: string; deleted_at?: string; destroyed?: boolean }>;
}

export function SecretFolder({ folder }: { folder: string }) {
  const list = useLoad(() => get<{ keys: string[] }>(folder === '' ? '/v1/secrets' : `/v1/secrets/${encodePath(folder)}/?list=true`), [folder]);
  const prefix = folder === '' ? '' : `${folder}/`;
  return (
    <section aria-labelledby="secrets-h">
      <h2 id="secrets-h">Secrets{folder ? ` in ${folder}/` : ''}</h2>
      {folder !== '' && <p><a href={`#/secrets/${encodePath(folder.split('/').slice(0, -1).join('/'))}${folder.includes('/') ? '/' : ''}`}>← Up</a></p>}
      {list.error && <Message kind="error">{list.error}</Message>}
      {!list.data && !list.error && <Loading what="secrets" />}
      {list.data && (list.data.keys.length === 0 ? <p>Nothing here.</p> : (
        <ul class="names">
          {list.data.keys.map((k) => <li key={k}><a href={`#/secrets/${encodePath(prefix + k)}`}>{k}</a></li>)}
        </ul>
      ))}
    </section>
  );
}

export function SecretView({ path }: { path: string }) {
  const meta = useLoad(() => get<Metadata>(`/v1/secret-metadata/${encodePath(path)}`), [path]);
  const [value, setValue] = useState<{ data: Record<string, unknown>; version: number }>();
  const [denied, setDenied] = useState<string>();
  useEffect(() => () => setValue(undefined), [path]);

  const reveal = async () => {
    setDenied(undefined);
    try {
      const secret = await get<{ data: Record<string, unknown>; version: number }>(`/v1/secrets/${encodePath(path)}`);
      setValue(secret);
    } catch (err) {
      setDenied(describeError(err));
    }
  };
  const parent = path.split('/').slice(0, -1).join('/');

  return (
    <div>
      <p><a href={`#/secrets/${parent ? `${encodePath(parent)}/` : ''}`}>← Folder</a></p>
      <h2>Secret {path}</h2>
      {meta.error && <Message kind="error">Metadata: {meta.error}</Message>}
      {!meta.data && !meta.error && <Loading what="metadata" />}
      {meta.data && (
        <>
          <Facts items={[
            ['Current version', String(meta.data.current_version)], ['Oldest version', String(meta.data.oldest_version)],
            ['Versions kept', String(meta.data.max_versions)], ['Check-and-set required', meta.data.cas_required ? 'yes' : 'no'],
            ['Created', when(meta.data.created_at)], ['Updated', when(meta.data.updated_at)],
          ]} />
          <table>
            <caption>Versions</caption>
            <thead><tr><th scope="col">Version</th><th scope="col">Created</th><th scope="col">State</th></tr></thead>
            <tbody>
              {Object.entries(meta.data.versions).reverse().map(([v, m]) => (
                <tr key={v}><th scope="row">{v}</th><td>{when(m.created_at)}</td><td>{m.destroyed ? 'destroyed' : m.deleted_at ? `deleted ${when(m.deleted_at)}` : 'live'}</td></tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <section aria-labelledby="value-h" class="card">
        <h2 id="value-h">Value</h2>
        {value ? (
          <>
            <p>Version {value.version}:</p>
            <pre class="secret-value" aria-label="secret value">{JSON.stringify(value.data, null, 2)}</pre>
            <button type="button" onClick={() => setValue(undefined)}>Hide value</button>
          </>
        ) : (
          <>
            <p class="muted">Hidden. Revealing it is recorded in the audit log.</p>
            <button type="button" onClick={reveal}>Reveal value</button>
          </>
        )}
        {denied && <Message kind="error" id="reveal-error">{denied}</Message>}
      </section>
    </div>
  );
}
