/*
 * Twin chat widget: one script tag puts a chat with a creator's twin on any page.
 *
 *   <script src="https://twin.example.com/widget.js" data-creator="maya" async></script>
 *
 * Optional attributes: data-token (an end-user token from the site's own login, instead of an
 * anonymous visitor), data-title (the panel's heading), data-team-label (the mark on messages from
 * the creator's team), data-color (the accent colour), data-open="true" (open at load).
 * window.TwinWidget: open(), close(), toggle(), setToken(token|null); a "twinwidget:ready" event
 * on window says it is there. Protocol: CONTRACT.md (/v1/chat); tickets: docs/WIDGET.md.
 *
 * Plain JavaScript (ES2017), no dependencies, no build step. Everything it draws lives in a
 * Shadow DOM, so the page's CSS cannot reach it and its CSS cannot reach the page.
 */
(function () {
  'use strict';

  if (window.TwinWidget && window.TwinWidget.version) {
    return; // Embedded twice: the first one stays.
  }

  var script = document.currentScript || findScript();
  if (!script || !script.src) {
    warn('cannot find its own <script> tag; give it data-creator="<slug>"');
    return;
  }
  var creator = script.getAttribute('data-creator');
  if (!creator) {
    warn('data-creator="<slug>" is missing on the <script> tag');
    return;
  }
  var scriptUrl = new URL(script.src, document.baseURI);
  // The server is where the script came from (a path prefix before /widget.js included).
  var base = scriptUrl.origin + scriptUrl.pathname.replace(/\/widget\.js$/, '');
  var wsBase = base.replace(/^http/, 'ws');
  var title = script.getAttribute('data-title') || 'Chat';
  var teamLabel = script.getAttribute('data-team-label') || 'From the team';
  var accent = script.getAttribute('data-color') || '#3451b2';
  var storageKey = 'twin-widget:' + base + ':' + creator;

  // Backoff of reconnects: 0.5 s doubling to 30 s, with jitter.
  var BACKOFF_FIRST_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var PING_EVERY_MS = 25000;
  var PONG_WITHIN_MS = 10000;
  var RESUME_BATCH = 200;

  // ---- state ----------------------------------------------------------------------------------

  var token = script.getAttribute('data-token') || null;
  var tokenUser = token ? tokenSubject(token) : null;
  var socket = null;
  var connected = false; // the socket is open
  var synced = false; // and the history has been caught up since it opened
  var wanted = false; // the widget should be connected (opened once)
  var attempt = 0;
  var retryTimer = null;
  var pingTimer = null;
  var pongTimer = null;
  var resuming = false;
  var generation = 0; // bumps on identity change: late answers of the old identity are dropped
  var messages = new Map(); // seq -> {seq, text, origin, id, choices}
  var contiguous = 0; // every message up to this seq is known
  var highest = 0;
  var pending = []; // {id, text, kind: 'message'|'choice', value, state: 'queued'|'sent'|'failed'}
  var previews = new Map(); // stream -> element
  var unread = 0;
  var isOpen = false;
  var failedAuth = 0; // token sockets that closed before they opened, in a row
  var everSynced = false; // caught up at least once: later messages count as unread while closed

  // ---- the view ---------------------------------------------------------------------------------

  var host = document.createElement('div');
  host.setAttribute('data-twin-widget', creator);
  host.style.cssText = 'all:initial;position:fixed;right:0;bottom:0;z-index:2147483000;';
  var root = host.attachShadow({ mode: 'open' });
  var css =
    ':host{all:initial}' +
    '*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;}' +
    '.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;' +
    'background:var(--accent);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;' +
    'align-items:center;justify-content:center;padding:0}' +
    '.launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f5a623;outline-offset:2px}' +
    '.launcher svg{width:28px;height:28px;fill:currentColor}' +
    '.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#d92d20;' +
    'color:#fff;font-size:12px;line-height:20px;text-align:center;padding:0 5px}' +
    '.panel{position:fixed;right:20px;bottom:88px;width:min(370px,calc(100vw - 24px));height:min(560px,calc(100vh - 110px));' +
    'background:#fff;color:#1d2433;border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.28);display:flex;' +
    'flex-direction:column;overflow:hidden;font-size:14px}' +
    '.panel[hidden],.badge[hidden],.status[hidden],.error[hidden]{display:none}' +
    'header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:var(--accent);color:#fff}' +
    'header h2{margin:0;font-size:15px;font-weight:600}' +
    '.close{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px}' +
    '.status{padding:6px 14px;background:#fff4e5;color:#7a4a00;font-size:12px;border-bottom:1px solid #f3d9b1}' +
    '.log{flex:1;overflow-y:auto;padding:12px;margin:0;list-style:none;display:flex;flex-direction:column;gap:8px}' +
    '.msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;line-height:1.4}' +
    '.msg[data-origin=user]{align-self:flex-end;background:var(--accent);color:#fff;border-bottom-right-radius:4px}' +
    '.msg[data-origin=twin],.msg[data-origin=program],.msg[data-origin=nudge],.msg[data-origin=human]{align-self:flex-start;' +
    'background:#eef1f6;border-bottom-left-radius:4px}' +
    '.msg[data-origin=human]{background:#e7f6ec;border:1px solid #b7e2c4}' +
    '.msg[data-state=queued],.msg[data-state=sent]{opacity:.65}' +
    '.msg[data-state=failed]{background:#fdecea;color:#8a1c12}' +
    '.preview{align-self:flex-start;background:#eef1f6;opacity:.8}' +
    '.team{display:block;font-size:11px;font-weight:600;color:#1e7a3c;margin-bottom:2px}' +
    '.choices{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}' +
    '.choices button{border:1px solid var(--accent);background:#fff;color:var(--accent);border-radius:14px;padding:5px 11px;' +
    'cursor:pointer;font-size:13px}' +
    '.choices button:disabled{opacity:.45;cursor:default}' +
    '.retry{margin-left:6px;background:none;border:0;color:inherit;text-decoration:underline;cursor:pointer;font-size:12px}' +
    '.error{padding:6px 14px;background:#fdecea;color:#8a1c12;font-size:12px}' +
    'form{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e7ee}' +
    'textarea{flex:1;resize:none;border:1px solid #c9d0dc;border-radius:10px;padding:8px 10px;font-size:14px;height:40px;' +
    'max-height:120px;color:#1d2433;background:#fff}' +
    '.send{border:0;border-radius:10px;background:var(--accent);color:#fff;padding:0 14px;cursor:pointer;font-size:14px}' +
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}';
  applyStyles(root, css);

  var wrapper = el('div', { style: '--accent:' + accent });
  var launcher = el('button', {
    type: 'button',
    class: 'launcher',
    'aria-label': 'Open chat',
    'aria-expanded': 'false',
    'aria-controls': 'twin-panel',
    'data-testid': 'twin-button',
  });
  launcher.innerHTML =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>';
  var badge = el('span', { class: 'badge', hidden: '', 'data-testid': 'twin-unread', 'aria-hidden': 'true' });
  launcher.appendChild(badge);

  var panel = el('section', {
    id: 'twin-panel',
    class: 'panel',
    role: 'dialog',
    'aria-label': title,
    hidden: '',
    'data-testid': 'twin-panel',
  });
  var header = el('header');
  var heading = el('h2', {}, title);
  var closeButton = el('button', { type: 'button', class: 'close', 'aria-label': 'Close chat', 'data-testid': 'twin-close' }, '\u00d7');
  header.appendChild(heading);
  header.appendChild(closeButton);
  var status = el('div', { class: 'status', role: 'status', 'data-testid': 'twin-offline', hidden: '' });
  var errorBox = el('div', { class: 'error', role: 'alert', 'data-testid': 'twin-error', hidden: '' });
  var log = el('ol', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', 'data-testid': 'twin-log' });
  var form = el('form', { 'data-testid': 'twin-form' });
  var inputId = 'twin-input';
  var label = el('label', { for: inputId, class: 'sr' }, 'Your message');
  var input = el('textarea', {
    id: inputId,
    rows: '1',
    maxlength: '4000',
    placeholder: 'Type a message\u2026',
    'aria-label': 'Your message',
    'data-testid': 'twin-input',
  });
  var sendButton = el('button', { type: 'submit', class: 'send', 'data-testid': 'twin-send' }, 'Send');
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(errorBox);
  panel.appendChild(log);
  panel.appendChild(form);
  wrapper.appendChild(panel);
  wrapper.appendChild(launcher);
  root.appendChild(wrapper);

  launcher.addEventListener('click', function () {
    toggle();
  });
  closeButton.addEventListener('click', function () {
    close();
  });
  panel.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    submit();
  });
  input.addEventListener('keydown', function (event) {
    // Enter sends; Shift+Enter is a new line; IME composition is left alone.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  window.addEventListener('online', function () {
    if (wanted && !socket) {
      connectSoon(0);
    }
  });

  function mount() {
    (document.body || document.documentElement).appendChild(host);
  }
  if (document.body) {
    mount();
  } else {
    document.addEventListener('DOMContentLoaded', mount);
  }

  // ---- opening and closing ------------------------------------------------------------------------

  function open() {
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    launcher.setAttribute('aria-label', 'Close chat');
    unread = 0;
    drawBadge();
    if (!wanted) {
      wanted = true;
      connectSoon(0);
    }
    drawStatus();
    scrollToEnd(true);
    input.focus();
  }

  function close() {
    if (!isOpen) {
      return;
    }
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-label', 'Open chat');
    launcher.focus();
  }

  function toggle() {
    if (isOpen) {
      close();
    } else {
      open();
    }
  }

  // ---- identity -----------------------------------------------------------------------------------

  function setToken(newToken) {
    newToken = newToken || null;
    var newUser = newToken ? tokenSubject(newToken) : null;
    var sameUser = newToken && token && newUser && newUser === tokenUser;
    token = newToken;
    tokenUser = newUser;
    failedAuth = 0;
    if (sameUser) {
      return; // A refreshed token of the same user: the next connection uses it.
    }
    // Another identity: another conversation.
    generation += 1;
    messages.clear();
    previews.clear();
    pending = [];
    contiguous = 0;
    highest = 0;
    log.textContent = '';
    showError(null);
    if (socket) {
      dropSocket();
    }
    if (wanted) {
      connectSoon(0);
    }
  }

  /** The `iss` and `sub` of a JWT, read without verifying (only to tell users apart). */
  function tokenSubject(jwt) {
    try {
      var payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var claims = JSON.parse(atob(payload));
      return (claims.iss || '') + ' ' + (claims.sub || '');
    } catch (e) {
      return null;
    }
  }

  function storedVisitor() {
    try {
      return window.localStorage.getItem(storageKey);
    } catch (e) {
      return null; // Storage blocked: a new visitor per page load.
    }
  }

  function storeVisitor(visitor) {
    try {
      window.localStorage.setItem(storageKey, visitor);
    } catch (e) {
      /* Storage blocked or full: the conversation lasts as long as the page. */
    }
  }

  // ---- the connection -----------------------------------------------------------------------------

  function connectSoon(delay) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function backoff(extraMs) {
    var ms = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, attempt));
    attempt += 1;
    ms = ms / 2 + Math.random() * (ms / 2);
    return Math.max(ms, extraMs || 0);
  }

  function connect() {
    if (!wanted || socket) {
      return;
    }
    var mine = generation;
    drawStatus();
    if (token) {
      open_socket(wsBase + '/v1/chat?token=' + encodeURIComponent(token), mine);
      return;
    }
    fetchTicket().then(
      function (answer) {
        if (mine !== generation || token) {
          return; // The identity changed while the ticket was on its way.
        }
        storeVisitor(answer.visitor);
        open_socket(wsBase + '/v1/chat?ticket=' + encodeURIComponent(answer.ticket), mine);
      },
      function (problem) {
        if (mine !== generation) {
          return;
        }
        if (problem && problem.status === 403) {
          showError('This site may not use this chat yet (its address is not on the creator\u2019s list).');
        } else if (problem && problem.detail) {
          showError(problem.detail);
        }
        connectSoon(backoff(problem && problem.retryAfterMs));
        drawStatus();
      }
    );
  }

  function fetchTicket() {
    var url = base + '/v1/creators/' + encodeURIComponent(creator) + '/widget/ticket';
    var visitor = storedVisitor();
    return fetch(url, {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(visitor ? { visitor: visitor } : {}),
    }).then(
      function (response) {
        if (response.ok) {
          return response.json();
        }
        var retryAfter = Number(response.headers.get('Retry-After'));
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            throw {
              status: response.status,
              detail: body && body.detail,
              retryAfterMs: retryAfter > 0 ? retryAfter * 1000 : 0,
            };
          });
      },
      function () {
        throw { status: 0 }; // Offline, or the server did not let this page read its answer.
      }
    );
  }

  function open_socket(url, mine) {
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      connectSoon(backoff());
      return;
    }
    socket = ws;
    var opened = false;
    ws.onopen = function () {
      if (socket !== ws) {
        return;
      }
      opened = true;
      connected = true;
      synced = false;
      failedAuth = 0;
      showError(null);
      startPings();
      resume();
      drawStatus();
    };
    ws.onmessage = function (event) {
      if (socket !== ws || mine !== generation) {
        return;
      }
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      receive(frame);
    };
    ws.onclose = function (event) {
      if (socket !== ws) {
        return;
      }
      if (!opened && token) {
        failedAuth += 1;
        if (failedAuth === 3) {
          // The token may have expired: the page can hand over a fresh one with setToken().
          window.dispatchEvent(new CustomEvent('twinwidget:tokenrejected', { detail: { creator: creator } }));
        }
      }
      forget();
      // 1012 (restart) and 1013 (too slow): come straight back and resume.
      var quick = opened && (event.code === 1012 || event.code === 1013);
      connectSoon(quick ? 100 + Math.random() * 400 : backoff());
      drawStatus();
    };
    ws.onerror = function () {
      /* onclose follows. */
    };
  }

  /** Forgets the current socket and what only lived with it. */
  function forget() {
    socket = null;
    connected = false;
    synced = false;
    resuming = false;
    stopPings();
    // Previews are not durable; the finished reply comes back with the resume.
    previews.forEach(function (node) {
      node.remove();
    });
    previews.clear();
    pending.forEach(function (item) {
      if (item.state === 'sent') {
        item.state = 'queued';
        drawPending(item);
      }
    });
  }

  function dropSocket() {
    var ws = socket;
    forget();
    if (ws) {
      ws.onclose = null;
      try {
        ws.close(1000, 'identity changed');
      } catch (e) {
        /* already closed */
      }
    }
  }

  function startPings() {
    stopPings();
    pingTimer = setInterval(function () {
      if (!send({ type: 'ping' })) {
        return;
      }
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () {
        // No answer: the connection is gone without a close (sleep, a dead network).
        if (socket) {
          var ws = socket;
          ws.onclose && ws.onclose({ code: 1006 });
          try {
            ws.close();
          } catch (e) {
            /* already closed */
          }
        }
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  function stopPings() {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
  }

  function send(frame) {
    if (!socket || !connected) {
      return false;
    }
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function resume() {
    resuming = true;
    send({ type: 'resume', after: contiguous, limit: RESUME_BATCH });
  }

  // ---- frames from the server -----------------------------------------------------------------------

  function receive(frame) {
    switch (frame.type) {
      case 'message':
        addMessage(frame);
        break;
      case 'ack':
        acked(frame.id, frame.seq);
        break;
      case 'delta':
        preview(frame.stream, frame.text);
        break;
      case 'resumed':
        resumed(frame.up_to, frame.more);
        break;
      case 'error':
        failed(frame);
        break;
      case 'pong':
        clearTimeout(pongTimer);
        break;
      default:
        break; // Frame types added later are ignored.
    }
  }

  function resumed(upTo, more) {
    if (typeof upTo === 'number' && upTo > contiguous) {
      contiguous = upTo;
      advance();
    }
    if (more) {
      resume();
      return;
    }
    resuming = false;
    attempt = 0;
    if (!synced) {
      synced = true;
      everSynced = true;
      flushPending();
      drawStatus();
    }
    if (highest > contiguous) {
      resume(); // Something arrived live past a gap while we caught up.
    }
  }

  function addMessage(frame) {
    if (typeof frame.seq !== 'number') {
      return;
    }
    if (frame.stream && previews.has(frame.stream)) {
      previews.get(frame.stream).remove();
      previews.delete(frame.stream);
    }
    if (frame.id && frame.origin === 'user') {
      // Our own message, replayed: it is durable, whatever we still held for it.
      dropPending(frame.id);
    }
    if (messages.has(frame.seq)) {
      return; // Seen already (a live frame and a resume overlapping).
    }
    var message = {
      seq: frame.seq,
      text: displayed(frame),
      origin: frame.origin || 'twin',
      id: frame.id || null,
      choices: Array.isArray(frame.choices) ? frame.choices : [],
    };
    messages.set(message.seq, message);
    highest = Math.max(highest, message.seq);
    drawMessage(message);
    advance();
    if (!isOpen && everSynced && message.origin !== 'user') {
      unread += 1;
      drawBadge();
    }
    // A message past a gap, outside a resume: fetch what is missing.
    if (synced && !resuming && message.seq > contiguous + 1) {
      resume();
    }
  }

  /** A choice the user picked is stored as its value; it is shown with its label. */
  function displayed(frame) {
    var text = String(frame.text || '');
    var asked = frame.origin === 'user' ? messages.get(frame.seq - 1) : null;
    if (asked) {
      for (var i = 0; i < asked.choices.length; i++) {
        if (asked.choices[i].value === text && asked.choices[i].label) {
          return asked.choices[i].label;
        }
      }
    }
    return text;
  }

  /** Moves `contiguous` over the messages that follow it. */
  function advance() {
    while (messages.has(contiguous + 1)) {
      contiguous += 1;
    }
  }

  function acked(id, seq) {
    var item = findPending(id);
    if (!item) {
      return;
    }
    dropPending(id);
    addMessage({ seq: seq, text: item.text, origin: 'user', id: id });
  }

  function preview(stream, text) {
    if (!stream || typeof text !== 'string') {
      return;
    }
    var node = previews.get(stream);
    if (!node) {
      node = el('li', { class: 'msg preview', 'data-testid': 'twin-preview', 'data-origin': 'twin', 'aria-busy': 'true' });
      previews.set(stream, node);
      log.appendChild(node);
    }
    node.textContent += text;
    scrollToEnd(false);
  }

  function failed(frame) {
    var item = frame.id ? findPending(frame.id) : null;
    if (item) {
      item.state = 'failed';
      item.error = frame.message || frame.code;
      drawPending(item);
    }
    showError(frame.message || 'Something went wrong (' + frame.code + ').');
  }

  // ---- sending ------------------------------------------------------------------------------------

  function submit() {
    var text = input.value.trim();
    if (!text) {
      return;
    }
    input.value = '';
    queue({ kind: 'message', text: text });
    input.focus();
  }

  function choose(choice) {
    queue({ kind: 'choice', text: choice.label || choice.value, value: choice.value });
    disableChoices();
  }

  function queue(item) {
    item.id = newId();
    item.state = 'queued';
    pending.push(item);
    drawPending(item);
    if (!wanted) {
      wanted = true;
      connectSoon(0);
    }
    if (synced) {
      transmit(item);
    }
    scrollToEnd(true);
  }

  function transmit(item) {
    var frame =
      item.kind === 'choice'
        ? { type: 'choice', id: item.id, value: item.value }
        : { type: 'message', id: item.id, text: item.text };
    if (send(frame)) {
      item.state = 'sent';
      drawPending(item);
    }
  }

  /** After a (re)connection caught up: what was typed meanwhile goes out, with its own id. */
  function flushPending() {
    pending.forEach(function (item) {
      if (item.state === 'queued') {
        transmit(item);
      }
    });
  }

  function findPending(id) {
    for (var i = 0; i < pending.length; i++) {
      if (pending[i].id === id) {
        return pending[i];
      }
    }
    return null;
  }

  function dropPending(id) {
    var item = findPending(id);
    if (!item) {
      return;
    }
    pending = pending.filter(function (p) {
      return p !== item;
    });
    if (item.node) {
      item.node.remove();
    }
  }

  function newId() {
    if (window.crypto && window.crypto.randomUUID) {
      return 'w-' + window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return 'w-' + Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }

  // ---- drawing ------------------------------------------------------------------------------------

  function drawMessage(message) {
    var node = el('li', {
      class: 'msg',
      'data-testid': 'twin-message',
      'data-origin': message.origin,
      'data-seq': String(message.seq),
    });
    if (message.origin === 'human') {
      node.appendChild(el('span', { class: 'team', 'data-testid': 'twin-team' }, teamLabel));
    }
    node.appendChild(el('span', { class: 'text', 'data-testid': 'twin-text' }, message.text));
    if (message.choices.length) {
      var choices = el('div', { class: 'choices', role: 'group', 'aria-label': 'Choices' });
      message.choices.forEach(function (choice) {
        var button = el('button', { type: 'button', 'data-testid': 'twin-choice', 'data-value': choice.value }, choice.label || choice.value);
        button.addEventListener('click', function () {
          choose(choice);
        });
        choices.appendChild(button);
      });
      node.appendChild(choices);
    }
    node._seq = message.seq;
    // In seq order, before pending messages and previews.
    var before = null;
    for (var child = log.firstChild; child; child = child.nextSibling) {
      if (child._seq === undefined || child._seq > message.seq) {
        before = child;
        break;
      }
    }
    log.insertBefore(node, before);
    refreshChoices();
    scrollToEnd(message.origin === 'user');
  }

  function drawPending(item) {
    if (!item.node) {
      item.node = el('li', { class: 'msg', 'data-testid': 'twin-message', 'data-origin': 'user' });
      item.node.appendChild(el('span', { class: 'text', 'data-testid': 'twin-text' }, item.text));
      var firstPreview = null;
      previews.forEach(function (node) {
        firstPreview = firstPreview || node;
      });
      log.insertBefore(item.node, firstPreview);
    }
    item.node.setAttribute('data-state', item.state);
    var retry = item.node.querySelector('.retry');
    if (item.state === 'failed' && !retry) {
      retry = el('button', { type: 'button', class: 'retry', 'data-testid': 'twin-retry' }, 'Retry');
      retry.addEventListener('click', function () {
        item.state = 'queued';
        retry.remove();
        drawPending(item);
        if (synced) {
          transmit(item);
        }
      });
      item.node.appendChild(retry);
    }
  }

  /** Only the latest message's choices can be answered. */
  function refreshChoices() {
    var last = highest;
    log.querySelectorAll('.msg').forEach(function (node) {
      if (node._seq === undefined) {
        return;
      }
      node.querySelectorAll('.choices button').forEach(function (button) {
        button.disabled = node._seq !== last;
      });
    });
  }

  function disableChoices() {
    log.querySelectorAll('.choices button').forEach(function (button) {
      button.disabled = true;
    });
  }

  function drawStatus() {
    var offline = wanted && !synced;
    status.hidden = !offline;
    if (!offline) {
      status.removeAttribute('data-state');
      return;
    }
    status.setAttribute('data-state', connected ? 'syncing' : 'offline');
    status.textContent = connected
      ? 'Catching up\u2026'
      : everSynced || pending.length
        ? 'Offline \u2014 reconnecting. Messages you write are sent when the connection is back.'
        : 'Connecting\u2026';
  }

  function drawBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? '9+' : String(unread);
    if (!isOpen) {
      launcher.setAttribute('aria-label', unread ? 'Open chat (' + unread + ' new)' : 'Open chat');
    }
  }

  function showError(text) {
    errorBox.hidden = !text;
    errorBox.textContent = text || '';
  }

  function scrollToEnd(force) {
    var nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (force || nearEnd) {
      log.scrollTop = log.scrollHeight;
    }
  }

  // ---- helpers ------------------------------------------------------------------------------------

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function applyStyles(shadow, text) {
    // Constructed style sheets are not inline styles: pages whose CSP forbids those still work.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(text);
      shadow.adoptedStyleSheets = [sheet];
    } catch (e) {
      shadow.appendChild(el('style', {}, text));
    }
  }

  function findScript() {
    var scripts = document.querySelectorAll('script[data-creator][src*="widget.js"]');
    return scripts[scripts.length - 1] || null;
  }

  function warn(text) {
    if (window.console) {
      window.console.warn('[twin widget] ' + text);
    }
  }

  // ---- the page's handle --------------------------------------------------------------------------

  window.TwinWidget = {
    version: 1,
    open: open,
    close: close,
    toggle: toggle,
    setToken: setToken,
  };
  window.dispatchEvent(new CustomEvent('twinwidget:ready', { detail: { creator: creator } }));
  if (script.getAttribute('data-open') === 'true') {
    open();
  }
})();
