// The live view (`/v1/live`, docs/LIVE.md): one socket per signed-in dashboard, watching all of
// the creator's conversations. The active conversations are kept in a Map that every `snapshot`
// (on connect, on reconnect, after `lagged`) replaces whole; events update it in between. Screens
// subscribe with `on(fn)` and get `{type: 'snapshot'|'event'|'update'|'status'|'lagged', …}`.

import { api, creatorPath, freshToken } from './api.js';
import { socketUrl } from './dom.js';

const PING_MS = 25_000;
const MAX_BACKOFF_MS = 15_000;
/** Events after which the conversation's control state is read again from the REST API. */
const CONTROL_KINDS = new Set([
  'taken_over', 'released', 'draft_proposed', 'draft_resolved', 'drafts_mode', 'handoff_requested',
  'step_entered', 'enrolled', 'program_finished', 'conversation_started',
]);

export class LiveStore {
  constructor(slug) {
    this.slug = slug;
    this.conversations = new Map();
    this.truncated = false;
    this.status = 'connecting';
    this.listeners = new Set();
    this.socket = null;
    this.stopped = false;
    this.attempt = 0;
    this.reloads = new Map();
    /** The last message of conversations not in the Map yet (while their view is read). */
    this.stash = new Map();
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.socket?.close();
    this.socket = null;
    this.listeners.clear();
  }

  /** Subscribes; returns the unsubscribe function. */
  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of [...this.listeners]) {
      try {
        fn(change);
      } catch (error) {
        console.error(error);
      }
    }
  }

  setStatus(status) {
    this.status = status;
    this.emit({ type: 'status', status });
  }

  async connect() {
    if (this.stopped) return;
    this.setStatus(this.attempt ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = await freshToken();
    } catch (error) {
      if (error.status !== 401) this.retry(); // a 401 ended the session: the app signs out
      return;
    }
    if (this.stopped) return;
    const socket = new WebSocket(socketUrl('/v1/live', { token, creator: this.slug }));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setStatus('open');
      this.pingTimer = setInterval(() => socket.send('{"type":"ping"}'), PING_MS);
    };
    socket.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.frame(frame);
    };
    socket.onclose = () => {
      clearInterval(this.pingTimer);
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.setStatus('reconnecting');
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  frame(frame) {
    switch (frame.type) {
      case 'snapshot': {
        const previous = this.conversations;
        this.conversations = new Map();
        for (const view of frame.conversations ?? []) {
          // What only events tell (the last message's text) survives a fresh snapshot.
          const old = previous.get(view.id);
          this.conversations.set(view.id, { ...view, last_text: old?.last_text, last_origin: old?.last_origin });
        }
        this.truncated = Boolean(frame.truncated);
        this.emit({ type: 'snapshot' });
        break;
      }
      case 'lagged':
        // A fresh snapshot follows; screens re-read what they show from it and the REST API.
        this.emit({ type: 'lagged', missed: frame.missed });
        break;
      case 'event':
        this.event(frame.conversation, frame.event ?? {});
        break;
      case 'error':
        console.warn('live view:', frame.code, frame.message);
        break;
      default:
        break;
    }
  }

  event(id, event) {
    const view = this.conversations.get(id);
    if (view) {
      reduce(view, event);
    } else if (event.kind !== 'delta') {
      if (event.kind === 'message') {
        const message = event.message ?? event;
        this.stash.set(id, { last_text: message.text, last_origin: message.origin });
      }
      this.reload(id);
    }
    if (CONTROL_KINDS.has(event.kind)) this.reload(id);
    this.emit({ type: 'event', conversation: id, event });
  }

  /** Reads one conversation again (debounced): a new one, or one whose control state changed. */
  reload(id) {
    if (this.reloads.has(id)) return;
    this.reloads.set(id, setTimeout(async () => {
      this.reloads.delete(id);
      try {
        const view = await api('GET', creatorPath(this.slug, `/conversations/${id}`));
        const old = this.conversations.get(id) ?? this.stash.get(id);
        this.stash.delete(id);
        this.conversations.set(id, { ...view, last_text: old?.last_text, last_origin: old?.last_origin, typing: old?.typing });
        this.emit({ type: 'update', conversation: id, view });
      } catch (error) {
        console.warn('live view: conversation', id, error);
      }
    }, 120));
  }
}

/** The control block of a view, with its defaults while the server has none. */
export function control(view) {
  view.control ??= { held_by: null, held_since: null, drafts: false, drafts_override: null, draft: null, handoff: null };
  return view.control;
}

/** A live event applied to a conversation view in place. */
export function reduce(view, event) {
  const c = control(view);
  switch (event.kind) {
    case 'message': {
      const message = event.message ?? event;
      view.last_seq = Math.max(view.last_seq ?? 0, message.seq ?? 0);
      view.last_activity = message.created_at ?? Date.now();
      view.last_text = message.text;
      view.last_origin = message.origin;
      if (message.origin === 'twin') view.typing = false;
      if (event.channel) view.channel = event.channel;
      break;
    }
    case 'reply_started':
      view.typing = true;
      break;
    case 'reply_failed':
      view.typing = false;
      break;
    case 'enrolled':
      view.mode = 'program';
      view.program = { ...(view.program ?? {}), program: event.program, version: event.version };
      break;
    case 'step_entered':
      view.program = { ...(view.program ?? {}), program: event.program, step: event.step };
      break;
    case 'program_finished':
      view.program = null;
      view.mode = 'free_chat';
      break;
    case 'handoff_requested':
      view.mode = 'handoff';
      c.handoff ??= { step: event.step, since: Date.now(), timeout_at: event.timeout_at ?? null };
      break;
    case 'taken_over':
      c.held_by = event.by ?? 'someone';
      c.held_since = event.at ?? Date.now();
      view.typing = false;
      break;
    case 'released':
      c.held_by = null;
      c.held_since = null;
      break;
    case 'draft_proposed':
      c.draft = { stream: event.stream, text: event.text, consistency: event.consistency ?? null, created_at: Date.now() };
      view.typing = false;
      break;
    case 'draft_resolved':
      if (!c.draft || c.draft.stream === event.stream) c.draft = null;
      break;
    case 'drafts_mode':
      c.drafts = Boolean(event.drafts);
      break;
    case 'nudge_scheduled':
      view.pending_nudges = (view.pending_nudges ?? 0) + 1;
      break;
    case 'nudge_fired':
    case 'nudge_skipped':
      view.pending_nudges = Math.max(0, (view.pending_nudges ?? 0) - 1);
      break;
    case 'conversation_started':
      view.idle = false;
      break;
    case 'conversation_idle':
      view.idle = true;
      break;
    default:
      break;
  }
}

/** Where the user writes from: the channel of the last message, their most recent provider, or web. */
export function channelOf(view) {
  if (view.channel) return view.channel;
  const contact = view.reachability?.channels?.[0];
  if (contact) return contact.channel;
  return view.preview || String(view.user ?? '').startsWith('preview:') ? 'preview' : 'web';
}

/** A handoff waiting for a human: the server's `control.handoff`, or the mode while it has none. */
export function waitingHandoff(view) {
  if (control(view).held_by) return null;
  if (view.control.handoff) return view.control.handoff;
  return view.mode === 'handoff' ? { step: view.program?.step ?? null, since: null, timeout_at: null } : null;
}

/** A user as people read it: widget visitors and preview users by kind, others by their id. */
export function userName(user) {
  const id = String(user ?? '');
  if (id.startsWith('web:')) return `Visitor ${id.slice(4, 12)}`;
  if (id.startsWith('preview:')) return 'Test user (preview)';
  return id;
}
