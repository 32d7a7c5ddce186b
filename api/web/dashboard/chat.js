// A client of the end-user chat protocol (`/v1/chat`, CONTRACT.md) for "Test my twin": messages
// and choices with idempotent client ids, reply deltas into a provisional bubble, and after a
// reconnect a `resume` from the last seq plus a resend of what was not acknowledged.

import { clientId, socketUrl } from './dom.js';

const MAX_BACKOFF_MS = 10_000;

export class ChatClient {
  /** `token()` gives a fresh end-user token for each connection. */
  constructor({ token, onChange, onError }) {
    this.token = token;
    this.onChange = onChange;
    this.onError = onError;
    this.messages = new Map();
    this.provisional = new Map();
    this.outbox = new Map();
    /** What a sent choice showed (its label), by client id. */
    this.labels = new Map();
    this.lastSeq = 0;
    this.status = 'connecting';
    this.stopped = false;
    this.attempt = 0;
    this.everOpened = false;
  }

  async connect() {
    if (this.stopped) return;
    let token;
    try {
      token = await this.token();
    } catch (error) {
      this.onError(error);
      this.setStatus('offline');
      return;
    }
    if (this.stopped) return;
    const socket = new WebSocket(socketUrl('/v1/chat', { token }));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.everOpened = true;
      this.setStatus('open');
      socket.send(JSON.stringify({ type: 'resume', after: this.lastSeq }));
      for (const frame of this.outbox.values()) socket.send(JSON.stringify(frame));
    };
    socket.onmessage = (message) => {
      try {
        this.frame(JSON.parse(message.data));
      } catch (error) {
        console.warn('chat frame', error);
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.setStatus('offline');
      if (!this.everOpened && this.attempt >= 2) {
        this.onError(new Error('The chat socket could not be opened (is this address among the creator\'s allowed origins?)'));
      }
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.socket?.close();
  }

  setStatus(status) {
    this.status = status;
    this.onChange();
  }

  frame(f) {
    switch (f.type) {
      case 'ack': {
        // The server does not echo the user's own message: the acknowledged frame becomes it.
        const sent = this.outbox.get(f.id);
        this.outbox.delete(f.id);
        if (sent && !this.messages.has(f.seq)) {
          this.messages.set(f.seq, { seq: f.seq, origin: 'user', id: f.id, text: sent.text ?? this.labels.get(f.id) ?? sent.value });
          this.lastSeq = Math.max(this.lastSeq, f.seq);
        }
        this.labels.delete(f.id);
        break;
      }
      case 'message':
        this.messages.set(f.seq, f);
        this.lastSeq = Math.max(this.lastSeq, f.seq);
        if (f.stream) this.provisional.delete(f.stream);
        if (f.id) this.outbox.delete(f.id);
        break;
      case 'delta':
        this.provisional.set(f.stream, (this.provisional.get(f.stream) ?? '') + f.text);
        break;
      case 'resumed':
        if (f.more) this.socket?.send(JSON.stringify({ type: 'resume', after: f.up_to }));
        break;
      case 'error':
        if (f.id) this.outbox.delete(f.id);
        this.onError(new Error(`${f.code}: ${f.message}`));
        break;
      default:
        return;
    }
    this.onChange();
  }

  send(frame) {
    this.outbox.set(frame.id, frame);
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
    this.onChange();
  }

  say(text) {
    this.send({ type: 'message', id: clientId(), text });
  }

  choose(value, label) {
    const id = clientId();
    if (label) this.labels.set(id, label);
    this.send({ type: 'choice', id, value });
  }

  /** Messages sent and not yet stored (shown greyed out). */
  pending() {
    return [...this.outbox.values()];
  }
}
