// Small DOM helpers for every screen: elements built from data (text always goes in as text,
// never as HTML), SVG elements, and the time formats the dashboard shows.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element: `h('button', {class: 'primary', testid: 'send', onclick}, 'Send')`. */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, same calling convention as `h`. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(el, props, children) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'testid') el.setAttribute('data-testid', value);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Runs `fn` at most once per animation frame, however often it is asked for. */
export function batched(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

const pad = (n) => String(n).padStart(2, '0');

/** `14:05` today, `3 Dec 14:05` on another day. */
export function clock(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.getDate()} ${d.toLocaleString('en', { month: 'short' })} ${time}`;
}

/** `just now`, `12 s ago`, `4 min ago`, `3 h ago`, `2 d ago`. */
export function ago(ms) {
  if (!ms) return '—';
  const secs = Math.round((Date.now() - ms) / 1000);
  if (secs < 5) return 'just now';
  return `${span(secs)} ago`;
}

/** `in 4 min`, or `now` once due. */
export function until(ms) {
  const secs = Math.round((ms - Date.now()) / 1000);
  return secs <= 0 ? 'now' : `in ${span(secs)}`;
}

function span(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  return `${Math.floor(secs / 86400)} d`;
}

/** `850 ms`, `2.3 s`. */
export function millis(ms) {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A client id for idempotent sends (crypto.randomUUID needs a secure context; this does not). */
export function clientId() {
  const random = new Uint8Array(12);
  crypto.getRandomValues(random);
  return `d-${Date.now().toString(36)}-${Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** A `ws:`/`wss:` URL of this server with query parameters. */
export function socketUrl(path, params) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
  return url.toString();
}
