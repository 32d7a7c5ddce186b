// One conversation: the transcript (the REST messages page, then live `message` events; reply
// `delta`s stream into a provisional bubble), the program position, the upcoming nudges, the
// consistency scores, and the controls: take over (also on the first keystroke in the composer),
// a human message, release, draft mode, and a pending draft to approve, edit or reject.

import { api, creatorPath, session } from './api.js';
import { sparkline } from './charts.js';
import { h, fill, batched, ago, clock, until, clientId } from './dom.js';
import { channelOf, control, reduce, userName, waitingHandoff } from './live.js';

const PAGE = 200;
export const LABELS = { user: 'User', twin: 'Twin', program: 'Program', nudge: 'Nudge', human: 'Human' };

export function conversationView(ctx, id) {
  const base = creatorPath(ctx.slug, `/conversations/${id}`);
  const me = session.account;
  let view = null;
  let disposed = false;
  const messages = new Map();
  const provisional = new Map();
  let nudges = [];
  let takingOver = false;
  let editing = null; // the edited draft text while the creator edits a draft

  const title = h('h2', {}, 'Conversation');
  const notice = h('div', { class: 'notices' });
  const transcript = h('div', { class: 'transcript', testid: 'transcript', 'aria-live': 'polite' });
  const draftBox = h('div', { class: 'draft-box' });
  const controls = h('div', { class: 'controls', testid: 'controls' });
  const composer = h('textarea', {
    testid: 'composer', rows: 2, placeholder: 'Write to the user… (typing takes the conversation over)',
    oninput: () => {
      if (composer.value.trim() && !control(view ?? {}).held_by && !takingOver) takeOver();
    },
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        sendHuman();
      }
    },
  });
  const sendButton = h('button', { class: 'primary', testid: 'send', onclick: () => sendHuman() }, 'Send');
  const side = h('aside', { class: 'side' });

  const isMine = (heldBy) => heldBy && (heldBy === me.email || heldBy === me.id);

  async function call(method, path, body) {
    try {
      const answer = await api(method, `${base}${path}`, body);
      if (answer && answer.id === id) {
        view = { ...view, ...answer };
        render();
      }
      return answer;
    } catch (error) {
      ctx.toast(error);
      if (error.status === 409) reloadView();
      return null;
    }
  }

  async function takeOver() {
    takingOver = true;
    render();
    await call('POST', '/takeover');
    takingOver = false;
    render();
  }

  async function sendHuman() {
    const text = composer.value.trim();
    if (!text) return;
    sendButton.disabled = true;
    const sent = await call('POST', '/messages', { text, client_id: clientId() });
    sendButton.disabled = false;
    if (sent) {
      composer.value = '';
      catchUp();
      reloadView();
    }
  }

  async function resolveDraft(action, text) {
    const draft = control(view).draft;
    if (!draft) return;
    const body = { stream: draft.stream, action };
    if (action === 'edit') body.text = text;
    const done = await call('POST', '/draft', body);
    if (done) {
      editing = null;
      catchUp();
    }
    render();
  }

  // Reading from the REST API.
  async function loadView() {
    const fresh = await api('GET', base);
    view = { ...(view ?? {}), ...fresh };
  }

  async function catchUp() {
    let after = Math.max(0, ...messages.keys());
    if (!messages.size && view) after = Math.max(0, (view.last_seq ?? 0) - PAGE);
    for (let pages = 0; pages < 20; pages += 1) {
      const page = await api('GET', `${base}/messages?after=${after}&limit=${PAGE}`).catch((e) => { ctx.toast(e); return null; });
      if (!page || disposed) return;
      for (const m of page.items) addMessage(m);
      if (!page.next) break;
      after = Number(page.next);
    }
    render();
  }

  async function loadNudges() {
    const mine = [];
    let after = '';
    for (let pages = 0; pages < 5; pages += 1) {
      const page = await api('GET', creatorPath(ctx.slug, `/nudges?status=pending&limit=200${after ? `&after=${encodeURIComponent(after)}` : ''}`))
        .catch((e) => { ctx.toast(e); return null; });
      if (!page) return;
      mine.push(...page.items.filter((n) => n.conversation === id));
      if (!page.next) break;
      after = page.next;
    }
    nudges = mine;
    render();
  }

  let viewTimer = null;
  function reloadView() {
    clearTimeout(viewTimer);
    viewTimer = setTimeout(() => loadView().then(render).catch(ctx.toast), 150);
  }
  let nudgeTimer = null;
  function reloadNudges() {
    clearTimeout(nudgeTimer);
    nudgeTimer = setTimeout(loadNudges, 200);
  }

  /** The page before the oldest message shown. */
  async function loadEarlier() {
    const oldest = Math.min(...messages.keys());
    const after = Math.max(0, oldest - 1 - PAGE);
    const page = await api('GET', `${base}/messages?after=${after}&limit=${oldest - 1 - after}`).catch((e) => { ctx.toast(e); return null; });
    if (!page || disposed) return;
    const height = transcript.scrollHeight;
    for (const m of page.items) addMessage(m);
    renderTranscript();
    transcript.scrollTop += transcript.scrollHeight - height; // stay on what was being read
  }

  function addMessage(m) {
    messages.set(m.seq, m);
    if (m.stream) provisional.delete(m.stream);
  }

  // Live events.
  const off = ctx.store.on((change) => {
    if (disposed) return;
    if (change.type === 'snapshot') {
      // First frame, a reconnect or a lag: what happened meanwhile is read again.
      if (view) {
        catchUp();
        reloadView();
        reloadNudges();
      }
      return;
    }
    if (change.type === 'update' && change.conversation === id) {
      view = { ...view, ...change.view };
      render();
      return;
    }
    if (change.type !== 'event' || change.conversation !== id || !view) return;
    const event = change.event;
    switch (event.kind) {
      case 'message':
        addMessage(event.message ?? event);
        break;
      case 'reply_started':
        if (!provisional.has(event.stream)) provisional.set(event.stream, '');
        break;
      case 'delta':
        provisional.set(event.stream, (provisional.get(event.stream) ?? '') + (event.text ?? ''));
        break;
      case 'reply_failed':
      case 'draft_proposed':
        provisional.delete(event.stream);
        break;
      case 'taken_over':
        provisional.clear(); // the reply being generated is cancelled
        break;
      default:
        break;
    }
    if (event.kind.startsWith('nudge')) reloadNudges();
    reduce(view, event);
    render();
  });

  const tick = setInterval(() => render(), 15_000);

  const render = batched(() => {
    if (!view || disposed) return;
    const c = control(view);
    title.textContent = userName(view.user);
    title.title = view.user;
    renderTranscript();
    renderNotice(c);
    renderControls(c);
    renderDraft(c);
    renderSide(c);
  });

  function renderTranscript() {
    const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
    const items = [...messages.values()].sort((a, b) => a.seq - b.seq).map(bubble);
    for (const [stream, text] of provisional) {
      items.push(h('div', { class: 'bubble twin provisional', testid: 'provisional', 'data-stream': stream },
        h('div', { class: 'meta' }, 'Twin · writing…'), h('div', { class: 'text' }, text || '…')));
    }
    if (!items.length) items.push(h('p', { class: 'muted center-text' }, 'No messages yet.'));
    if (messages.size && Math.min(...messages.keys()) > 1) {
      items.unshift(h('button', { class: 'link earlier', testid: 'load-earlier', onclick: loadEarlier }, 'Show earlier messages'));
    }
    fill(transcript, items);
    if (nearBottom) transcript.scrollTop = transcript.scrollHeight;
  }

  function renderNotice(c) {
    const handoff = waitingHandoff(view);
    fill(notice, handoff ? h('div', { class: 'notice handoff', testid: 'handoff-notice', role: 'status' },
      h('strong', {}, 'The program hands this conversation to a human'),
      ` at step ${handoff.step ?? view.program?.step ?? '?'}${handoff.since ? ` (since ${clock(handoff.since)})` : ''}. `,
      handoff.timeout_at ? `Without a reply the program moves on at ${clock(handoff.timeout_at)} (${until(handoff.timeout_at)}). ` : '',
      'Take over to answer; release to hand it back to the twin.') : null);
    if (c.held_by && !isMine(c.held_by)) {
      notice.append(h('div', { class: 'notice' }, `${c.held_by} holds this conversation since ${clock(c.held_since)}.`));
    }
  }

  function renderControls(c) {
    const state = c.held_by
      ? (isMine(c.held_by) ? `You hold this conversation (since ${clock(c.held_since)}); the twin is silent.` : `Held by ${c.held_by}.`)
      : takingOver ? 'Taking over…' : 'The twin answers this conversation.';
    const drafts = h('input', {
      type: 'checkbox', testid: 'drafts-toggle', checked: Boolean(c.drafts),
      onchange: (e) => call('PUT', '/drafts', { drafts: e.target.checked }),
    });
    fill(controls,
      h('span', { class: `state ${c.held_by ? 'held' : ''}`, testid: 'control-state', 'data-held': c.held_by ? 'yes' : 'no' }, state),
      h('span', { class: 'grow' }),
      h('label', { class: 'toggle', title: 'The twin proposes each reply; you approve, edit or reject it before it is sent.' },
        drafts, 'Draft mode',
        c.drafts_override === null || c.drafts_override === undefined
          ? h('small', { class: 'muted' }, ' (creator default)')
          : h('button', { class: 'link small', testid: 'drafts-default', onclick: () => call('PUT', '/drafts', { drafts: null }) }, 'use default')),
      c.held_by
        ? h('button', { class: 'secondary', testid: 'release', onclick: () => call('POST', '/release') }, 'Release to the twin')
        : h('button', { class: 'primary', testid: 'takeover', disabled: takingOver, onclick: takeOver }, 'Take over'));
  }

  function renderDraft(c) {
    const draft = c.draft;
    if (!draft) {
      editing = null;
      fill(draftBox);
      return;
    }
    if (editing !== null && draftBox.querySelector('textarea')) return; // keep what is being typed
    const score = draft.consistency === null || draft.consistency === undefined ? null : draft.consistency;
    if (editing !== null) {
      const editor = h('textarea', { testid: 'draft-editor', rows: 3, oninput: (e) => { editing = e.target.value; } });
      editor.value = editing;
      fill(draftBox, h('div', { class: 'draft card', testid: 'draft' },
        h('div', { class: 'meta' }, 'Edit the twin\'s draft, then send it'), editor,
        h('div', { class: 'row' },
          h('button', { class: 'primary', testid: 'draft-send-edit', onclick: () => resolveDraft('edit', editor.value) }, 'Send edited'),
          h('button', { class: 'link', onclick: () => { editing = null; renderDraft(control(view)); } }, 'Cancel'))));
      editor.focus();
      return;
    }
    fill(draftBox, h('div', { class: 'draft card', testid: 'draft', 'data-stream': draft.stream },
      h('div', { class: 'meta' }, 'The twin proposes', score === null ? '' : h('span', { class: `score ${tone(score)}` }, score.toFixed(2))),
      h('div', { class: 'text', testid: 'draft-text' }, draft.text),
      h('div', { class: 'row' },
        h('button', { class: 'primary', testid: 'draft-approve', onclick: () => resolveDraft('approve') }, 'Approve'),
        h('button', { class: 'secondary', testid: 'draft-edit', onclick: () => { editing = draft.text; renderDraft(control(view)); } }, 'Edit'),
        h('button', { class: 'danger', testid: 'draft-reject', onclick: () => resolveDraft('reject') }, 'Reject'))));
  }

  function renderSide(c) {
    const p = view.program;
    const scores = [...messages.values()].filter((m) => typeof m.consistency === 'number').sort((a, b) => a.seq - b.seq).map((m) => m.consistency);
    const last = scores.at(-1);
    const average = scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null;
    const r = view.reachability ?? {};
    fill(side,
      h('section', { class: 'card', testid: 'program-position' }, h('h3', {}, 'Program'),
        p ? [h('p', { class: 'big' }, p.program, h('small', { class: 'muted' }, p.version ? ` v${p.version}` : '')),
          h('p', {}, 'Step ', h('strong', { testid: 'program-step' }, p.step ?? '…'), p.phase ? h('span', { class: 'muted' }, ` — waits for ${p.phase.replace('_', '-')}`) : ''),
          p.enrolled_at ? h('p', { class: 'muted' }, `Enrolled ${ago(p.enrolled_at)}`) : null]
          : h('p', { class: 'muted' }, 'Free chat (no program).')),
      h('section', { class: 'card', testid: 'nudges' }, h('h3', {}, 'Upcoming nudges'),
        nudges.length ? h('ul', { class: 'plain' }, nudges.map((n) => h('li', { testid: 'nudge' },
          h('strong', {}, clock(n.due_at)), ` ${until(n.due_at)} · `, n.kind ?? 'nudge', n.in_flight ? ' (sending)' : '')))
          : h('p', { class: 'muted' }, 'None scheduled.')),
      h('section', { class: 'card', testid: 'consistency' }, h('h3', {}, 'Consistency with the persona'),
        scores.length ? [h('p', {}, h('span', { class: `score big ${tone(last)}`, testid: 'consistency-last' }, last.toFixed(2)),
          h('span', { class: 'muted' }, ` last · ${average.toFixed(2)} average of ${scores.length}`)),
        scores.length > 1 ? sparkline(scores, { label: 'Consistency of the twin\'s replies, oldest to newest' }) : null]
          : h('p', { class: 'muted' }, 'No scored replies yet.')),
      h('section', { class: 'card' }, h('h3', {}, 'User'), h('p', { class: 'muted small', testid: 'user-id' }, h('code', {}, view.user)),
        h('p', {}, h('span', { class: `channel ${channelOf(view)}` }, channelOf(view)), ` · first seen ${clock(view.created_at)}`),
        h('p', { class: 'muted' }, `${view.last_seq ?? 0} messages · last ${ago(view.last_activity)}`),
        r.opted_out ? h('p', { class: 'warn' }, 'Opted out of nudges (STOP).') : null,
        r.unreachable ? h('p', { class: 'warn' }, 'Unreachable: a channel says the user blocked the twin.') : null));
  }

  const el = h('section', { class: 'screen conversation', testid: 'conversation', 'data-id': id },
    h('div', { class: 'screen-head' }, h('a', { href: '#/live', class: 'back' }, '← Live'), title),
    notice,
    h('div', { class: 'split' },
      h('div', { class: 'main-col' }, transcript, draftBox, controls,
        h('div', { class: 'composer' }, composer, sendButton)),
      side));

  (async () => {
    try {
      await loadView();
    } catch (error) {
      ctx.toast(error);
      fill(transcript, h('p', { class: 'muted center-text' }, error.status === 404 ? 'No such conversation.' : 'The conversation could not be read.'));
      return;
    }
    render();
    await Promise.all([catchUp(), loadNudges()]);
  })();

  return {
    el,
    dispose: () => {
      disposed = true;
      off();
      clearInterval(tick);
      clearTimeout(viewTimer);
      clearTimeout(nudgeTimer);
    },
  };
}

function tone(score) {
  if (score >= 0.75) return 'good';
  if (score >= 0.5) return 'fair';
  return 'poor';
}

function bubble(m) {
  const score = typeof m.consistency === 'number' ? h('span', { class: `score ${tone(m.consistency)}`, title: 'Consistency with the persona' }, m.consistency.toFixed(2)) : null;
  return h('div', { class: `bubble ${m.origin}`, testid: 'message', 'data-origin': m.origin, 'data-seq': m.seq },
    h('div', { class: 'meta' }, LABELS[m.origin] ?? m.origin, ` · ${clock(m.created_at)}`, score),
    h('div', { class: 'text' }, m.text),
    m.choices?.length ? h('div', { class: 'choices' }, m.choices.map((c) => h('span', { class: 'chip' }, c.label ?? c.value))) : null);
}
