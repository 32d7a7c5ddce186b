// The dashboard's entry: sign-in, the creator being watched (admins pick one), the shell with its
// navigation, and the hash router (`#/live`, `#/c/<id>`, `#/test`, `#/stats`, `#/embed`). Each
// screen is a function returning `{el, dispose}`; `dispose` runs when the screen is left.

import { ApiProblem, api, creatorPath, logout, onSignedOut, resume, session } from './api.js';
import { conversationView } from './conversation.js';
import { listView } from './conversations.js';
import { h, fill, batched } from './dom.js';
import { embedView } from './embed.js';
import { LiveStore, waitingHandoff } from './live.js';
import { previewView } from './preview.js';
import { pickCreatorView, signInView } from './signin.js';
import { statsView } from './stats.js';

const CREATOR_KEY = 'twin.creator';
const root = document.getElementById('app');
const toasts = document.getElementById('toasts');

/** What every screen gets: the creator, the live store, and ways to report and move. */
const ctx = {
  slug: null,
  profile: null,
  store: null,
  toast,
  go: (hash) => {
    location.hash = hash;
  },
};

const ROUTES = [
  [/^#\/live$/, () => listView(ctx)],
  [/^#\/c\/([0-9a-fA-F-]{36})$/, (m) => conversationView(ctx, m[1])],
  [/^#\/test$/, () => previewView(ctx)],
  [/^#\/stats$/, () => statsView(ctx)],
  [/^#\/embed$/, () => embedView(ctx)],
];

let screen = null;
let main = null;
let nav = null;

/** Shows an error to the user: a problem's title and detail, or the message of anything else. */
function toast(error) {
  if (error instanceof ApiProblem && error.status === 401) return; // the sign-in screen says it
  const text = error instanceof ApiProblem ? `${error.title}: ${error.detail || `HTTP ${error.status}`}` : String(error?.message ?? error);
  const el = h('div', { class: 'toast', testid: 'error-toast', role: 'alert' },
    h('span', {}, text),
    h('button', { class: 'icon', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
  toasts.append(el);
  setTimeout(() => el.remove(), 10_000);
}

function leaveScreen() {
  screen?.dispose?.();
  screen = null;
}

function stopCreator() {
  leaveScreen();
  ctx.store?.stop();
  ctx.store = null;
  ctx.slug = null;
  ctx.profile = null;
  main = null;
}

/** A deliberate sign-out also forgets the screen: the next account starts on the live list. */
function signOut() {
  history.replaceState(null, '', location.pathname);
  logout();
}

function showSignIn(reason) {
  stopCreator();
  fill(root, signInView({ reason, onSignedIn: enter }));
}

async function enter() {
  const account = session.account;
  if (account.role === 'admin') {
    const chosen = sessionStorage.getItem(CREATOR_KEY);
    if (chosen) return openCreator(chosen);
    return showPicker();
  }
  return openCreator(account.creator);
}

function showPicker() {
  stopCreator();
  fill(root, pickCreatorView({ toast, onPick: (slug) => {
    sessionStorage.setItem(CREATOR_KEY, slug);
    openCreator(slug);
  }, onSignOut: signOut }));
}

async function openCreator(slug) {
  stopCreator();
  try {
    ctx.profile = await api('GET', creatorPath(slug));
  } catch (error) {
    if (error.status === 401) return;
    toast(error);
    if (session.account?.role === 'admin') {
      sessionStorage.removeItem(CREATOR_KEY);
      showPicker();
    }
    return;
  }
  ctx.slug = slug;
  ctx.store = new LiveStore(slug);
  fill(root, shell());
  ctx.store.start();
  route();
}

function shell() {
  const status = h('span', { class: 'live-status', testid: 'live-status', 'data-state': 'connecting', title: 'Live view' });
  const waiting = h('span', { class: 'badge handoff', testid: 'handoff-count', hidden: true });
  const link = (hash, label, testid, extra) => h('a', { href: hash, testid, 'data-route': hash }, label, extra);
  nav = h('nav', {}, link('#/live', 'Live', 'nav-live', waiting), link('#/test', 'Test my twin', 'nav-test'),
    link('#/stats', 'Stats', 'nav-stats'), link('#/embed', 'Embed', 'nav-embed'));
  const account = session.account;
  const name = ctx.profile?.persona?.name ?? ctx.slug;
  const header = h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('img', { src: 'icon.svg', alt: '', width: 24, height: 24 }), h('strong', {}, 'Twin'),
      h('span', { class: 'creator', testid: 'creator-name' }, name, h('small', {}, ` @${ctx.slug}`))),
    nav,
    h('div', { class: 'who' }, status,
      account.role === 'admin' ? h('button', { class: 'link', testid: 'switch-creator', onclick: showPicker }, 'Switch creator') : null,
      h('span', { class: 'email', title: account.role }, account.email),
      h('button', { class: 'link', testid: 'signout', onclick: signOut }, 'Sign out')));
  main = h('main', { id: 'main' });
  const update = batched(() => {
    status.dataset.state = ctx.store?.status ?? 'closed';
    status.title = `Live view: ${ctx.store?.status ?? 'closed'}`;
    const count = [...(ctx.store?.conversations.values() ?? [])].filter((v) => waitingHandoff(v)).length;
    waiting.hidden = count === 0;
    waiting.textContent = String(count);
    waiting.title = `${count} waiting for a human`;
  });
  ctx.store.on(update);
  update();
  return [header, main];
}

function route() {
  if (!main) return;
  leaveScreen();
  const hash = location.hash || '#/live';
  for (const [pattern, make] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    screen = make(match);
    fill(main, screen.el);
    for (const a of nav.querySelectorAll('a')) {
      const active = hash === a.dataset.route || (a.dataset.route === '#/live' && hash.startsWith('#/c/'));
      a.classList.toggle('active', active);
    }
    return;
  }
  location.replace('#/live');
}

window.addEventListener('hashchange', route);
onSignedOut((reason) => showSignIn(reason));

(async () => {
  if (await resume()) await enter();
  else showSignIn(null);
})();
