// Test my twin: a preview chat as a fictional user (`preview:<account>`, not counted in stats)
// over the real chat protocol, a program picker to start a program, and fast-forward: the next
// timer of the preview conversation fires now, so a program's days pass in minutes.

import { api, creatorPath } from './api.js';
import { ChatClient } from './chat.js';
import { LABELS } from './conversation.js';
import { h, fill, batched, clock, until } from './dom.js';

const KEY = 'twin.preview';

export function previewView(ctx) {
  const profile = ctx.profile ?? {};
  let chat = null;
  let conversation = sessionStorage.getItem(`${KEY}.${ctx.slug}`);
  let view = null;
  let nudges = [];
  let disposed = false;

  const programs = h('select', { testid: 'preview-program', 'aria-label': 'Program' },
    h('option', { value: '' }, profile.default_program ? `As a new user (${profile.default_program})` : 'As a new user (free chat)'),
    (profile.programs ?? []).map((p) => h('option', { value: p.id }, `Program: ${p.id}`)));
  const start = h('button', { class: 'primary', testid: 'preview-start', onclick: () => open(true) }, 'Start a fresh test');
  const status = h('span', { class: 'chat-status', testid: 'preview-status' });
  const log = h('div', { class: 'transcript preview-chat', testid: 'preview-chat', 'aria-live': 'polite' });
  const input = h('textarea', {
    rows: 2, testid: 'preview-input', placeholder: 'Write as the user…', disabled: true,
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        say();
      }
    },
  });
  const send = h('button', { class: 'primary', testid: 'preview-send', disabled: true, onclick: () => say() }, 'Send');
  const side = h('aside', { class: 'side' });
  const result = h('p', { class: 'muted', testid: 'fast-forward-result', 'aria-live': 'polite' });
  const deferred = h('p', { class: 'warn', testid: 'fast-forward-deferred', 'aria-live': 'polite' });
  const forward = h('button', { class: 'secondary', testid: 'fast-forward', disabled: true, onclick: fastForward }, 'Fast-forward to the next timer');

  function say() {
    const text = input.value.trim();
    if (!text || !chat) return;
    chat.say(text);
    input.value = '';
  }

  async function open(reset) {
    start.disabled = true;
    try {
      const body = reset ? { reset: true, ...(programs.value ? { program: programs.value } : {}) } : { reset: false };
      const session = await api('POST', creatorPath(ctx.slug, '/preview'), body);
      if (disposed) return;
      conversation = session.conversation;
      sessionStorage.setItem(`${KEY}.${ctx.slug}`, conversation);
      chat?.stop();
      let first = session.token;
      chat = new ChatClient({
        token: async () => {
          if (first) {
            const token = first;
            first = null;
            return token;
          }
          return (await api('POST', creatorPath(ctx.slug, '/preview'), { reset: false })).token; // the same conversation
        },
        onChange: render,
        onError: ctx.toast,
      });
      chat.connect();
      result.textContent = '';
    deferred.textContent = '';
      input.disabled = false;
      send.disabled = false;
      forward.disabled = false;
      input.focus();
      refreshSide();
    } catch (error) {
      ctx.toast(error);
    } finally {
      start.disabled = false;
    }
  }

  async function fastForward() {
    forward.disabled = true;
    result.textContent = '';
    deferred.textContent = '';
    try {
      const fired = await api('POST', creatorPath(ctx.slug, '/preview/fast-forward'));
      // The nudge policy may still defer what fired (quiet hours, the daily cap): the live
      // view's `nudge_deferred` then says until when, below.
      result.textContent = fired.fired
        ? `Fired the timer that was due ${clock(fired.due_at)}: the test user is now at that moment.`
        : 'Nothing is scheduled: the program waits for the user.';
      refreshSide();
    } catch (error) {
      ctx.toast(error);
    } finally {
      forward.disabled = !chat;
    }
  }

  async function refreshSide() {
    if (!conversation) return render();
    try {
      view = await api('GET', creatorPath(ctx.slug, `/conversations/${conversation}`));
      const page = await api('GET', creatorPath(ctx.slug, '/nudges?status=pending&limit=200'));
      nudges = page.items.filter((n) => n.conversation === conversation);
    } catch (error) {
      if (error.status !== 404) ctx.toast(error);
    }
    render();
  }
  let sideTimer = null;
  const off = ctx.store.on((change) => {
    if (change.type === 'event' && change.conversation === conversation && change.event.kind === 'nudge_deferred') {
      const e = change.event;
      deferred.textContent = `The nudge policy deferred it to ${clock(e.until)}${e.reason ? ` (${e.reason.replaceAll('_', ' ')})` : ''}: fast-forward again to jump there.`;
    }
    if ((change.type === 'event' || change.type === 'update') && change.conversation === conversation && change.event?.kind !== 'delta') {
      clearTimeout(sideTimer);
      sideTimer = setTimeout(refreshSide, 150);
    }
  });

  const render = batched(() => {
    if (disposed) return;
    status.textContent = chat ? (chat.status === 'open' ? 'connected' : chat.status) : 'not started';
    status.dataset.state = chat?.status ?? 'idle';
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const items = [];
    if (chat) {
      const sorted = [...chat.messages.values()].sort((a, b) => a.seq - b.seq);
      sorted.forEach((m, i) => {
        const last = i === sorted.length - 1;
        items.push(h('div', { class: `bubble ${m.origin} ${m.origin === 'user' ? 'mine' : ''}`, testid: 'preview-message', 'data-origin': m.origin, 'data-seq': m.seq },
          h('div', { class: 'meta' }, m.origin === 'user' ? 'You (as the user)' : LABELS[m.origin] ?? m.origin),
          h('div', { class: 'text' }, m.text),
          m.choices?.length ? h('div', { class: 'choices' }, m.choices.map((c) => h('button', {
            class: 'chip', testid: 'preview-choice', disabled: !last, onclick: () => chat.choose(c.value, c.label),
          }, c.label ?? c.value))) : null));
      });
      for (const frame of chat.pending()) {
        items.push(h('div', { class: 'bubble user mine pending' }, h('div', { class: 'meta' }, 'sending…'), h('div', { class: 'text' }, frame.text ?? chat.labels.get(frame.id) ?? frame.value)));
      }
      for (const [stream, text] of chat.provisional) {
        items.push(h('div', { class: 'bubble twin provisional', testid: 'preview-provisional', 'data-stream': stream }, h('div', { class: 'meta' }, 'Twin · writing…'), h('div', { class: 'text' }, text || '…')));
      }
    }
    if (!items.length) {
      items.push(h('div', { class: 'empty' }, h('p', {}, 'Talk to your twin as a user would. Nothing here counts in your stats.'),
        h('p', { class: 'muted' }, 'Pick a program to walk through it, then use fast-forward to jump to each next timer (a day later, a check-in) without waiting.')));
    }
    fill(log, items);
    if (nearBottom) log.scrollTop = log.scrollHeight;

    const p = view?.program;
    const next = nudges[0];
    fill(side,
      h('section', { class: 'card', testid: 'preview-position' }, h('h3', {}, 'Where the test user is'),
        view ? (p ? [h('p', { class: 'big' }, p.program), h('p', {}, 'Step ', h('strong', { testid: 'preview-step' }, p.step), h('span', { class: 'muted' }, ` — waits for ${p.phase}`))]
          : h('p', { class: 'muted' }, 'Free chat (no program).')) : h('p', { class: 'muted' }, 'Start a test to see the program position.'),
        conversation ? h('p', {}, h('a', { href: `#/c/${conversation}`, testid: 'preview-open-live' }, 'Open in the live view →')) : null),
      h('section', { class: 'card' }, h('h3', {}, 'Time'),
        next ? h('p', { testid: 'preview-next-timer' }, `Next timer: ${next.kind ?? 'nudge'} due ${clock(next.due_at)} (${until(next.due_at)}).`)
          : h('p', { class: 'muted' }, 'No timer pending.'),
        forward, result, deferred));
  });

  if (conversation) open(false);
  render();

  const el = h('section', { class: 'screen preview' },
    h('div', { class: 'screen-head' }, h('h2', {}, 'Test my twin'),
      h('p', { class: 'muted' }, 'A private conversation with your twin as a fictional user.')),
    h('div', { class: 'row toolbar' }, programs, start, h('span', { class: 'grow' }), status),
    h('div', { class: 'split' },
      h('div', { class: 'main-col' }, log, h('div', { class: 'composer' }, input, send)),
      side));
  return {
    el,
    dispose: () => {
      disposed = true;
      chat?.stop();
      off();
      clearTimeout(sideTimer);
    },
  };
}
