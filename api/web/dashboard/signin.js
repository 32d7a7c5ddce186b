// Sign in (email + password → POST /v1/auth/login) and, for admins, the creator to watch.

import { api, login } from './api.js';
import { h } from './dom.js';

export function signInView({ reason, onSignedIn }) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, testid: 'signin-email', autofocus: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, testid: 'signin-password' });
  const error = h('p', { class: 'error', testid: 'signin-error', role: 'alert', hidden: !reason }, reason ?? '');
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'signin-submit' }, 'Sign in');
  const form = h('form', {
    class: 'card signin', testid: 'signin',
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      try {
        await login(email.value.trim(), password.value);
        password.value = '';
        await onSignedIn();
      } catch (problem) {
        error.textContent = problem.detail || problem.message;
        error.hidden = false;
        password.select();
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('div', { class: 'brand big' }, h('img', { src: 'icon.svg', alt: '', width: 40, height: 40 }), h('h1', {}, 'Twin')),
  h('p', { class: 'muted' }, 'Watch your twin talk, step in, and test it.'),
  h('label', {}, 'Email', email),
  h('label', {}, 'Password', password),
  error,
  submit);
  return h('div', { class: 'center' }, form);
}

/** Admins watch one creator at a time. */
export function pickCreatorView({ toast, onPick, onSignOut }) {
  const list = h('ul', { class: 'picker', testid: 'creator-picker' }, h('li', { class: 'muted' }, 'Loading creators…'));
  (async () => {
    try {
      const page = await api('GET', '/v1/creators?limit=200');
      list.replaceChildren(...page.items.map((c) => h('li', {},
        h('button', { class: 'secondary', testid: 'pick-creator', 'data-slug': c.slug, onclick: () => onPick(c.slug) }, c.slug))));
      if (!page.items.length) list.replaceChildren(h('li', { class: 'muted' }, 'No creators yet.'));
    } catch (error) {
      toast(error);
    }
  })();
  return h('div', { class: 'center' }, h('div', { class: 'card signin' }, h('h1', {}, 'Which creator?'),
    h('p', { class: 'muted' }, 'As an admin you watch one creator at a time.'), list,
    h('button', { class: 'link', onclick: onSignOut }, 'Sign out')));
}
