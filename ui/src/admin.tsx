/**
 * What the administration pages (operators, groups, policies, approval policies) share: a
 * state-changing call's outcome (done, a 202 awaiting approval, or refused with its code), the
 * caller's capabilities on one record, lists typed one per line, and deletion behind an explicit,
 * typed confirmation.
 */
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, describeError, get, type Answer } from './api';
import { AwaitingApproval, isApprovalAnswer } from './approval';
import { Field, Loading, Message, useLoad, type Loaded } from './components';
import type { Approval } from './types';

export type Outcome = { kind: 'error' | 'success'; text: string } | { kind: 'pending'; approval: Approval } | undefined;

/**
 * One state-changing call at a time: `run` reports a 202 as the approval request it opened (the
 * change did not happen) and calls `done` only when the server made the change.
 */
export function useChange() {
  const [outcome, setOutcome] = useState<Outcome>();
  const [busy, setBusy] = useState(false);
  const run = async (call: () => Promise<Answer<unknown>>, success: string, done?: () => void) => {
    setBusy(true);
    setOutcome(undefined);
    try {
      const answer = await call();
      if (isApprovalAnswer(answer.status, answer.body)) setOutcome({ kind: 'pending', approval: answer.body.approval });
      else {
        setOutcome({ kind: 'success', text: success });
        done?.();
      }
    } catch (err) {
      setOutcome({ kind: 'error', text: describeError(err) });
    } finally {
      setBusy(false);
    }
  };
  return { outcome, busy, run };
}

export function ShowOutcome({ outcome }: { outcome: Outcome }) {
  if (!outcome) return null;
  return outcome.kind === 'pending' ? <AwaitingApproval approval={outcome.approval} /> : <Message kind={outcome.kind}>{outcome.text}</Message>;
}

/**
 * The caller's capabilities on a record's policy path (GET /v1/sys/capabilities, from the same
 * compiled policies the server decides with), to say up front what the page will refuse. Until
 * the answer arrives, or if the question itself fails, everything is offered: the server decides.
 */
export function useCaps(path: string): (cap: string) => boolean {
  const caps = useLoad(() => get<{ capabilities: string[] }>(`/v1/sys/capabilities?path=${encodeURIComponent(path)}`), [path]);
  return (cap) => !caps.data || caps.data.capabilities.includes(cap);
}

/** Says why an action is not offered, instead of a button the server would refuse. */
export function Allowed({ can, cap, path, children }: { can: (cap: string) => boolean; cap: string; path: string; children: ComponentChildren }) {
  return can(cap) ? <>{children}</> : <p class="not-allowed">Not allowed: your policies do not give <code>{cap}</code> on <code>{path}</code>.</p>;
}

/** A list typed one entry per line (SSO group names may hold commas and spaces). */
export const lines = (text: string) => text.split('\n').map((s) => s.trim()).filter((s) => s !== '');

/**
 * Whether `url` names an existing record. The create forms ask first because their PUTs create
 * or replace: a new record must not silently overwrite one of the same name. A refused read (403)
 * leaves it to the server.
 */
export async function exists(url: string): Promise<boolean> {
  try {
    await get(url);
    return true;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 403)) return false;
    throw err;
  }
}

/**
 * Delete, behind a confirmation that names what goes: the name must be typed, and Cancel (or
 * Escape) leaves without a call. Focus moves into the confirmation and back to the button.
 */
export function ConfirmDelete({ what, name, busy, onDelete }: { what: string; name: string; busy: boolean; onDelete: () => void }) {
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const form = useRef<HTMLFormElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const moved = useRef(false);
  // A layout effect: focus has moved before the next key press can arrive.
  useLayoutEffect(() => {
    if (!moved.current) return;
    moved.current = false;
    if (open) form.current?.querySelector('input')?.focus();
    else button.current?.focus();
  }, [open]);
  const toggle = (to: boolean) => {
    moved.current = true;
    setTyped('');
    setOpen(to);
  };
  if (!open) return <button type="button" class="danger" ref={button} disabled={busy} onClick={() => toggle(true)}>Delete {what}…</button>;
  return (
    <form class="confirm" ref={form} aria-label={`Confirm deletion of ${what} ${name}`}
      onKeyDown={(e) => { if (e.key === 'Escape') toggle(false); }}
      onSubmit={(e) => { e.preventDefault(); if (typed === name) { toggle(false); onDelete(); } }}>
      <p>Deleting {what} <strong>{name}</strong> cannot be undone. Type its name to confirm.</p>
      <Field label={`Name of the ${what} to delete`} value={typed} onInput={setTyped} required />
      <div class="actions">
        <button type="submit" class="danger" disabled={typed !== name}>Delete {name}</button>
        <button type="button" class="secondary" onClick={() => toggle(false)}>Cancel</button>
      </div>
    </form>
  );
}

/** A section listing records by name, each a link to its page; a refused list says so with its code. */
export function NameList({ what, list, names, href }: { what: string; list: Loaded<unknown>; names: string[] | undefined; href: string }) {
  return (
    <section aria-labelledby="list-h">
      <h2 id="list-h">All {what}</h2>
      {list.error && <Message kind="error">{list.error}</Message>}
      {list.loading && !list.data && !list.error && <Loading what={what} />}
      {names && (names.length === 0 ? <p>No {what} yet.</p> : (
        <ul class="names">{names.map((n) => <li key={n}><a href={href + encodeURIComponent(n)}>{n}</a></li>)}</ul>
      ))}
    </section>
  );
}

/**
 * One record's page: its facts and edit form (`view`, given the record and the caller's
 * capabilities), then its deletion. Deleted, the page says so and offers nothing more; a 202
 * leaves the record as it is, with the approval request shown.
 */
export function RecordPage<T>({ what, plural, url, path, back, note, view }: {
  what: string; plural: string; url: string; path: string; back: string; note: string;
  view: (record: T, can: (cap: string) => boolean, reload: () => void) => ComponentChildren;
}) {
  const record = useLoad(() => get<T>(url), [url]);
  const can = useCaps(path);
  const del = useChange();
  const [gone, setGone] = useState(false);
  const name = path.slice(path.lastIndexOf('/') + 1);
  return (
    <div>
      <p><a href={`#/${back}`}>← All {plural}</a></p>
      {gone ? <ShowOutcome outcome={del.outcome} /> : (
        <>
          {record.error && <Message kind="error">{record.error}</Message>}
          {!record.data && !record.error && <Loading what={`the ${what}`} />}
          {record.data && view(record.data, can, record.reload)}
          <section aria-labelledby="delete-h" class="card">
            <h2 id="delete-h">Delete</h2>
            <p class="muted">{note}</p>
            <Allowed can={can} cap="delete" path={path}>
              <ConfirmDelete what={what} name={name} busy={del.busy} onDelete={() => void del.run(() => api('DELETE', url), `The ${what} ${name} was deleted.`, () => setGone(true))} />
            </Allowed>
            <ShowOutcome outcome={del.outcome} />
          </section>
        </>
      )}
    </div>
  );
}

/** The edit section of a record's page, or why it is not offered. */
export function EditSection({ title, can, path, children }: { title: string; can: (cap: string) => boolean; path: string; children: ComponentChildren }) {
  return (
    <section aria-labelledby="edit-h" class="card">
      <h2 id="edit-h">{title}</h2>
      <Allowed can={can} cap="update" path={path}>{children}</Allowed>
    </section>
  );
}
