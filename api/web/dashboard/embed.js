// Embed: the widget snippet of GET /v1/creators/{slug}/widget, ready to copy, and the web origins
// allowed to embed it (changed with PATCH /v1/creators/{slug}).

import { api, creatorPath } from './api.js';
import { h, fill } from './dom.js';

export function embedView(ctx) {
  const snippet = h('pre', { class: 'snippet', testid: 'embed-snippet' }, 'Loading…');
  const copied = h('span', { class: 'muted', testid: 'embed-copied', 'aria-live': 'polite' });
  const origins = h('ul', { class: 'plain origins', testid: 'embed-origins' });
  const input = h('input', { type: 'url', placeholder: 'https://your-site.example', testid: 'origin-input', 'aria-label': 'Origin to allow' });
  let allowed = [];

  function showOrigins() {
    fill(origins, allowed.length
      ? allowed.map((o) => h('li', {}, h('code', {}, o), ' ', h('button', { class: 'link small', onclick: () => save(allowed.filter((x) => x !== o)) }, 'remove')))
      : h('li', { class: 'warn' }, 'No origin is allowed yet: add the address of the site that embeds the widget.'));
  }

  async function save(next) {
    try {
      const profile = await api('PATCH', creatorPath(ctx.slug), { allowed_origins: next });
      allowed = profile.allowed_origins ?? next;
      showOrigins();
    } catch (error) {
      ctx.toast(error);
    }
  }

  async function copy() {
    const text = snippet.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard permission (or not a secure context): select the text for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(snippet);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
      return;
    }
    copied.textContent = 'Copied.';
    setTimeout(() => { copied.textContent = ''; }, 3000);
  }

  (async () => {
    try {
      const widget = await api('GET', creatorPath(ctx.slug, '/widget'));
      snippet.textContent = widget.snippet;
      allowed = widget.allowed_origins ?? [];
    } catch (error) {
      ctx.toast(error);
      snippet.textContent = `The snippet could not be read: ${error.detail || error.message}`;
      allowed = ctx.profile?.allowed_origins ?? [];
    }
    showOrigins();
  })();

  const el = h('section', { class: 'screen embed' },
    h('div', { class: 'screen-head' }, h('h2', {}, 'Embed the chat widget'),
      h('p', { class: 'muted' }, 'Paste this before </body> on your site. Visitors chat with your twin without an account; a site with its own login can pass a user token instead.')),
    h('div', { class: 'card' }, snippet,
      h('div', { class: 'row' }, h('button', { class: 'primary', testid: 'embed-copy', onclick: copy }, 'Copy snippet'), copied)),
    h('div', { class: 'card' }, h('h3', {}, 'Allowed origins'),
      h('p', { class: 'muted' }, 'The widget only opens on pages of these origins (scheme, host and port, e.g. https://coach.example).'),
      origins,
      h('form', { class: 'row', onsubmit: (e) => {
        e.preventDefault();
        const value = input.value.trim().replace(/\/+$/, '');
        if (value && !allowed.includes(value)) save([...allowed, value]);
        input.value = '';
      } }, input, h('button', { class: 'secondary', type: 'submit', testid: 'origin-add' }, 'Allow'))));
  return { el, dispose: () => {} };
}
