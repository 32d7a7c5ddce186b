// Live conversations: the `/v1/live` snapshot and its events as a table that updates as users
// write, with badges for held-by-human, draft pending and handoff waiting, and a notice for every
// program handoff that waits for a human (with the time the program moves on without one).

import { h, fill, batched, ago, clock } from './dom.js';
import { channelOf, control, userName, waitingHandoff } from './live.js';

const TICK_MS = 15_000;

export function listView(ctx) {
  const notices = h('div', { class: 'notices', testid: 'handoff-notices' });
  const body = h('tbody', {});
  const empty = h('div', { class: 'empty', testid: 'live-empty', hidden: true },
    h('p', {}, 'No active conversations right now. They appear here the moment a user writes.'),
    h('p', {}, 'Try it yourself in ', h('a', { href: '#/test' }, 'Test my twin'), '.'));
  const truncated = h('p', { class: 'muted', hidden: true }, 'Showing the 500 most recently active conversations.');
  const table = h('table', { class: 'list', testid: 'live-list' },
    h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Channel'), h('th', {}, 'Program step'),
      h('th', {}, 'Last message'), h('th', {}, 'Last activity'), h('th', {}, ''))),
    body);

  const render = batched(() => {
    const views = [...ctx.store.conversations.values()]
      .sort((a, b) => (b.last_activity ?? b.created_at ?? 0) - (a.last_activity ?? a.created_at ?? 0));
    fill(notices, views.map((v) => handoffNotice(v, ctx)).filter(Boolean));
    fill(body, views.map((v) => row(v, ctx)));
    table.hidden = views.length === 0;
    empty.hidden = views.length > 0;
    truncated.hidden = !ctx.store.truncated;
  });
  const off = ctx.store.on((change) => {
    if (change.type !== 'status') render();
  });
  const tick = setInterval(render, TICK_MS);
  render();

  const el = h('section', { class: 'screen' },
    h('div', { class: 'screen-head' }, h('h2', {}, 'Live conversations'),
      h('p', { class: 'muted' }, 'Conversations active now, newest activity first. Open one to read along or take over.')),
    notices, table, empty, truncated);
  return { el, dispose: () => { off(); clearInterval(tick); } };
}

function row(view, ctx) {
  const c = control(view);
  const handoff = waitingHandoff(view);
  const step = view.program ? `${view.program.program} · ${view.program.step ?? '…'}` : 'free chat';
  const badges = [
    view.preview || String(view.user).startsWith('preview:') ? h('span', { class: 'badge preview', testid: 'badge-preview' }, 'preview') : null,
    c.held_by ? h('span', { class: 'badge held', testid: 'badge-held', title: `held by ${c.held_by}` }, 'human') : null,
    c.draft ? h('span', { class: 'badge draft', testid: 'badge-draft' }, 'draft pending') : null,
    handoff ? h('span', { class: 'badge handoff', testid: 'badge-handoff' }, 'waits for you') : null,
    view.typing ? h('span', { class: 'badge typing' }, 'typing…') : null,
    view.idle ? h('span', { class: 'badge idle' }, 'idle') : null,
  ];
  const open = () => ctx.go(`#/c/${view.id}`);
  return h('tr', {
    testid: 'conversation-row', 'data-id': view.id, 'data-user': view.user, class: view.idle ? 'idle' : '',
    tabindex: 0, onclick: open, onkeydown: (e) => { if (e.key === 'Enter') open(); },
  },
  h('td', { class: 'user', title: view.user }, userName(view.user)),
  h('td', {}, h('span', { class: `channel ${channelOf(view)}` }, channelOf(view))),
  h('td', { testid: 'row-step' }, step),
  h('td', { class: 'last-text', testid: 'row-last-text' }, view.last_text
    ? [h('span', { class: `origin ${view.last_origin}` }, `${view.last_origin}: `), view.last_text]
    : h('span', { class: 'muted' }, `${view.last_seq ?? 0} messages`)),
  h('td', { title: clock(view.last_activity) }, ago(view.last_activity ?? view.created_at)),
  h('td', { class: 'badges' }, badges));
}

function handoffNotice(view, ctx) {
  const handoff = waitingHandoff(view);
  if (!handoff) return null;
  const timeout = handoff.timeout_at
    ? `If nobody takes over, the program moves on at ${clock(handoff.timeout_at)}.`
    : 'The twin stays silent until somebody takes over and releases.';
  return h('div', { class: 'notice handoff', testid: 'handoff-notice', 'data-id': view.id, role: 'status' },
    h('strong', {}, `${userName(view.user)} waits for a human`),
    ` at step ${handoff.step ?? view.program?.step ?? '?'}${handoff.since ? ` since ${clock(handoff.since)}` : ''}. ${timeout} `,
    h('button', { class: 'primary small', onclick: () => ctx.go(`#/c/${view.id}`) }, 'Open'));
}
