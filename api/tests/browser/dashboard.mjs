// The dashboard and the widget in headless Chromium, like a creator and a visitor would use them.
// Run by api/tests/browser.rs, which starts the server and passes, in the environment:
//   TWIN_URL        the server (its dashboard is at /dashboard/)
//   TWIN_SITE_URL   the creator's own site: a page on another loopback origin embedding the widget
//   TWIN_EMAIL, TWIN_PASSWORD, TWIN_CREATOR   the creator's account
//   TWIN_ADMIN_EMAIL   an admin account (same password), who picks the creator to watch
//   TWIN_CHROMIUM   the Chromium binary (Debian's /usr/bin/chromium)
//   TWIN_SCREENSHOTS=1   also save the main screens to docs/img/*.png
// Exit 0 and "all browser checks passed" on success; otherwise the failing step and why.

import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (run through api/tests/browser.rs)`);
    process.exit(2);
  }
  return value;
}

const TWIN = required('TWIN_URL');
const SITE = required('TWIN_SITE_URL');
const EMAIL = required('TWIN_EMAIL');
const PASSWORD = required('TWIN_PASSWORD');
const CREATOR = required('TWIN_CREATOR');
const ADMIN_EMAIL = required('TWIN_ADMIN_EMAIL');
const CHROMIUM = required('TWIN_CHROMIUM');
const SHOTS = process.env.TWIN_SCREENSHOTS === '1';
const IMG = fileURLToPath(new URL('../../../docs/img/', import.meta.url));
const TIMEOUT = 20_000;

let current = 'start';
async function step(name, fn) {
  current = name;
  const started = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

/** Polls `fn` until it returns something truthy, or fails naming `what`. */
async function until(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last = null;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name, { fullPage = false } = {}) {
  if (!SHOTS) return;
  await mkdir(IMG, { recursive: true });
  await page.waitForTimeout(300); // let the last frame paint (screenshots only, never a check)
  await page.screenshot({ path: `${IMG}${name}.png`, fullPage });
  console.log(`     screenshot docs/img/${name}.png`);
}

/** The visitor on the creator's site, chatting through the embedded widget (in its shadow root). */
function widgetVisitor(page) {
  const texts = (origin) => page.locator(`[data-testid="twin-message"][data-origin="${origin}"] [data-testid="twin-text"]`).allTextContents();
  return {
    async open() {
      await page.getByTestId('twin-button').click();
      await page.getByTestId('twin-input').waitFor();
    },
    async say(text) {
      await page.getByTestId('twin-input').fill(text);
      await page.getByTestId('twin-send').click();
    },
    texts,
  };
}

let dashPage = null;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const problems = [];
try {
  const creatorContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await creatorContext.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: TWIN });
  const dash = await creatorContext.newPage();
  dashPage = dash;
  dash.setDefaultTimeout(TIMEOUT);
  dash.on('pageerror', (error) => problems.push(`dashboard page error: ${error.message}`));
  dash.on('console', (message) => {
    // Failed requests are checked below with their addresses; anything else logged as an error counts.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`dashboard console error: ${message.text()}`);
    }
  });
  // The two refusals the steps below provoke on purpose; any other failed request is a problem.
  const expected = new Set(['401 POST /v1/auth/login', '401 POST /v1/auth/refresh']);
  dash.on('response', (response) => {
    if (response.status() < 400) return;
    const what = `${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`;
    if (!expected.has(what)) problems.push(`dashboard request failed: ${what}`);
  });
  const byId = (id) => dash.getByTestId(id);

  // The dashboard's live sockets pass through the test, which can add frames (a `lagged`), drop
  // the connection, and while `liveHold` is set keep back what the server sends: events are lost
  // (as while a network is down) and snapshots wait for the release.
  const liveRoutes = [];
  let liveHold = null;
  await dash.routeWebSocket(/\/v1\/live/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((frame) => {
      if (!liveHold) ws.send(frame);
      else if (JSON.parse(frame).type === 'snapshot') liveHold.push(frame);
    });
    liveRoutes.push(ws);
  });

  await step('/ redirects to the dashboard, which asks to sign in', async () => {
    await dash.goto(`${TWIN}/`);
    check(new URL(dash.url()).pathname === '/dashboard/', `landed on ${dash.url()}`);
    await byId('signin').waitFor();
    await byId('signin-email').fill(EMAIL);
    await shot(dash, 'signin');
  });

  await step('a wrong password is refused with the server\'s words', async () => {
    await byId('signin-password').fill('not the password at all');
    await byId('signin-submit').click();
    await until('the sign-in error', async () => (await byId('signin-error').textContent()).includes('wrong'));
  });

  await step('the creator signs in and the live view connects', async () => {
    await byId('signin-password').fill(PASSWORD);
    await byId('signin-submit').click();
    await byId('nav-live').waitFor();
    check((await byId('creator-name').textContent()).includes(`@${CREATOR}`), 'the header names the creator');
    await until('the live socket', async () => (await byId('live-status').getAttribute('data-state')) === 'open');
    await byId('live-empty').waitFor();
  });

  // The visitor: another browser context (no shared storage) on the creator's site.
  const visitorContext = await browser.newContext({ viewport: { width: 420, height: 720 } });
  const sitePage = await visitorContext.newPage();
  sitePage.setDefaultTimeout(TIMEOUT);
  sitePage.on('pageerror', (error) => problems.push(`site page error: ${error.message}`));
  await sitePage.goto(SITE);
  const visitor = widgetVisitor(sitePage);
  const first = 'Hi Maya, how do I protect my mornings?';
  let row;
  let conversationId;
  let twinReplies = 0;

  await step('a visitor writes through the widget and the message arrives live', async () => {
    await visitor.open();
    await visitor.say(first);
    // The list was empty: the first row is the visitor's (its user id is the widget's to choose).
    await byId('conversation-row').first().waitFor();
    conversationId = await byId('conversation-row').first().getAttribute('data-id');
    row = dash.locator(`[data-testid="conversation-row"][data-id="${conversationId}"]`);
    await until('the twin\'s answer in the widget', async () => (await visitor.texts('twin')).length > 0);
    twinReplies = (await visitor.texts('twin')).length;
    await until('the answer in the live list', async () => (await row.getByTestId('row-last-text').textContent()).startsWith('twin:'));
  });

  await step('the conversation view shows the transcript', async () => {
    await row.click();
    await byId('conversation').waitFor();
    await byId('transcript').getByTestId('message').filter({ hasText: first }).waitFor();
    await byId('transcript').locator('[data-testid="message"][data-origin="twin"]').first().waitFor();
    check((await byId('control-state').getAttribute('data-held')) === 'no', 'the twin holds the conversation');
  });

  const human = 'Hi, it\'s Maya herself. Start with one protected hour tomorrow.';
  await step('typing takes over; the human message reaches the widget', async () => {
    await byId('composer').pressSequentially('Hi, it', { delay: 15 });
    await until('the takeover', async () => (await byId('control-state').getAttribute('data-held')) === 'yes');
    await byId('composer').fill(human);
    await byId('send').click();
    await byId('transcript').locator('[data-testid="message"][data-origin="human"]').filter({ hasText: human }).waitFor();
    await until('the human message in the widget', async () => (await visitor.texts('human')).includes(human));
    check((await byId('composer').inputValue()) === '', 'the composer is emptied after sending');
    await shot(dash, 'conversation');
  });

  await step('while held, the twin stays silent', async () => {
    const held = 'Thanks! Should I turn my phone off?';
    await visitor.say(held);
    await byId('transcript').getByTestId('message').filter({ hasText: held }).waitFor();
    // A negative check needs a window: a reply would have started streaming well within it.
    await dash.waitForTimeout(1500);
    check((await visitor.texts('twin')).length === twinReplies, 'no twin reply while a human holds the conversation');
    check(await byId('provisional').count() === 0, 'no reply streaming while held');
  });

  await step('release: the twin answers the next message', async () => {
    await byId('release').click();
    await until('the release', async () => (await byId('control-state').getAttribute('data-held')) === 'no');
    await visitor.say('And what about evenings?');
    await until('a new twin reply in the widget', async () => (await visitor.texts('twin')).length > twinReplies);
    twinReplies = (await visitor.texts('twin')).length;
    await until('the reply in the transcript', async () =>
      (await byId('transcript').locator('[data-testid="message"][data-origin="twin"]').count()) >= 2);
  });

  await step('draft mode: a proposed reply waits, approved it is sent', async () => {
    await byId('drafts-toggle').check();
    await until('draft mode on', async () => byId('drafts-toggle').isChecked());
    await visitor.say('Should I start with ten minutes?');
    const proposed = await until('the draft', async () => {
      const text = await byId('draft-text').textContent({ timeout: 500 });
      return text?.trim() ? text : null;
    });
    check((await visitor.texts('twin')).length === twinReplies, 'the draft is not sent before approval');
    await byId('draft-approve').click();
    await until('the approved reply in the widget', async () => (await visitor.texts('twin')).includes(proposed));
    twinReplies = (await visitor.texts('twin')).length;
    await until('the draft card gone', async () => (await byId('draft').count()) === 0);
  });

  await step('draft mode: an edited draft is sent as edited, the live list shows the badge', async () => {
    await visitor.say('And on weekends?');
    await byId('draft-text').waitFor();
    await byId('nav-live').click();
    await row.getByTestId('badge-draft').waitFor();
    await row.click();
    await byId('draft-edit').click();
    const edited = 'Weekends count too: keep it to one calm block.';
    await byId('draft-editor').fill(edited);
    await byId('draft-send-edit').click();
    // An edited draft is the human's words: it is sent as a human message.
    await until('the edited reply in the widget', async () => (await visitor.texts('human')).includes(edited));
    check((await visitor.texts('twin')).length === twinReplies, 'the unedited draft was not sent');
    await until('the draft card gone', async () => (await byId('draft').count()) === 0);
  });

  await step('draft mode: a rejected draft is not sent', async () => {
    await visitor.say('ok');
    await byId('draft-text').waitFor();
    await byId('draft-reject').click();
    await until('the draft card gone', async () => (await byId('draft').count()) === 0);
    check((await visitor.texts('twin')).length === twinReplies, 'nothing was sent');
    await byId('drafts-toggle').uncheck();
    await until('draft mode off', async () => !(await byId('drafts-toggle').isChecked()));
  });

  await step('more visitors: each conversation has its row, the most recent first', async () => {
    for (const text of ['Any tips for a calmer evening routine?', 'How do I get back on track after a bad week?']) {
      const page = await (await browser.newContext({ viewport: { width: 420, height: 720 } })).newPage();
      page.on('pageerror', (error) => problems.push(`site page error: ${error.message}`));
      await page.goto(SITE);
      const other = widgetVisitor(page);
      await other.open();
      await other.say(text);
      await until('the twin\'s answer to another visitor', async () => (await other.texts('twin')).length > 0);
    }
    await byId('nav-live').click();
    await until('three rows', async () => (await byId('conversation-row').count()) === 3);
    check((await byId('conversation-row').last().getAttribute('data-id')) === conversationId, 'the quietest conversation is last');
  });

  await step('a program handoff waits for a human, with its timeout; taking over and releasing ends it', async () => {
    await visitor.say('Could I talk to Maya herself, please?');
    await until('the handoff text in the widget', async () => (await visitor.texts('program')).some((t) => t.includes('asked Maya to join')));
    await byId('nav-live').click();
    const notice = dash.locator(`[data-testid="handoff-notice"][data-id="${conversationId}"]`);
    await until('the notice with its timeout', async () => (await notice.textContent({ timeout: 500 })).includes('the program moves on at'));
    await row.getByTestId('badge-handoff').waitFor();
    check((await byId('handoff-count').textContent()) === '1', 'the header counts one conversation waiting');
    await shot(dash, 'live');
    await notice.getByRole('button', { name: 'Open' }).click();
    await byId('conversation').locator('[data-testid="handoff-notice"]').waitFor();
    await byId('takeover').click();
    await until('the takeover', async () => (await byId('control-state').getAttribute('data-held')) === 'yes');
    const answer = 'Maya here: send me your plan and I will look at it tonight.';
    await byId('composer').fill(answer);
    await byId('send').click();
    await until('Maya\'s answer in the widget', async () => (await visitor.texts('human')).includes(answer));
    await byId('release').click();
    // Released, the handoff step moves on: the program says its last words.
    await until('the program\'s end in the widget', async () => (await visitor.texts('program')).includes('Thanks for talking with Maya.'));
    await until('the notice gone', async () => (await byId('handoff-notice').count()) === 0);
    await until('nothing waiting in the header', async () => byId('handoff-count').isHidden());
  });

  await step('after `lagged` the fresh snapshot replaces the list; a dropped socket reconnects and catches up', async () => {
    await byId('nav-live').click();
    await row.waitFor();
    const first = liveRoutes.at(-1);
    first.send(JSON.stringify({ type: 'lagged', missed: 7 }));
    first.send(JSON.stringify({ type: 'snapshot', conversations: [], truncated: false }));
    await byId('live-empty').waitFor();
    await dash.evaluate((id) => { location.hash = `#/c/${id}`; }, conversationId);
    await byId('transcript').getByTestId('message').first().waitFor();
    liveHold = [];
    const sockets = liveRoutes.length;
    await first.close({ code: 1012, reason: 'restart' });
    await until('a new live socket', async () => liveRoutes.length > sockets);
    const missed = 'I wrote this while your connection was down.';
    await visitor.say(missed);
    await until('the twin\'s answer in the widget', async () => (await visitor.texts('twin')).length > twinReplies);
    twinReplies = (await visitor.texts('twin')).length;
    check(await byId('transcript').getByTestId('message').filter({ hasText: missed }).count() === 0, 'the message was not seen live');
    const held = liveHold;
    liveHold = null;
    for (const frame of held) liveRoutes.at(-1).send(frame);
    await byId('transcript').getByTestId('message').filter({ hasText: missed }).waitFor();
    await until('the twin\'s answer read back', async () =>
      (await byId('transcript').locator('[data-testid="message"][data-origin="twin"]').count()) >= 3);
    await until('the live socket', async () => (await byId('live-status').getAttribute('data-state')) === 'open');
    await byId('nav-live').click();
    await row.waitFor();
  });

  await step('embed: allowed origins are added and removed', async () => {
    await byId('nav-embed').click();
    await until('the site among the allowed origins', async () => (await byId('embed-origins').textContent()).includes(SITE));
    await byId('origin-input').fill('https://maya.example/');
    await byId('origin-add').click();
    await until('the new origin listed', async () => (await byId('embed-origins').textContent()).includes('https://maya.example'));
    await byId('embed-origins').locator('li').filter({ hasText: 'https://maya.example' }).getByRole('button', { name: 'remove' }).click();
    await until('the origin removed', async () => !(await byId('embed-origins').textContent()).includes('https://maya.example'));
    check((await byId('embed-origins').textContent()).includes(SITE), 'the site stays allowed');
    // The dashboard's own address is not listed: its preview chat below opens all the same.
  });

  await step('test my twin: a preview walks through a program, fast-forwarded', async () => {
    await byId('nav-test').click();
    await byId('preview-program').selectOption('focus-reset');
    await byId('preview-start').click();
    const messages = (origin) => dash.locator(`[data-testid="preview-message"][data-origin="${origin}"]`);
    await messages('program').filter({ hasText: 'what should I call you' }).waitFor();
    await until('the preview socket', async () => (await byId('preview-status').getAttribute('data-state')) === 'open');
    await byId('preview-input').fill('Sam');
    await byId('preview-send').click();
    await byId('preview-choice').filter({ hasText: 'Calmer mornings' }).click();
    await messages('program').filter({ hasText: 'how many hours' }).waitFor();
    await byId('preview-input').fill('2');
    await byId('preview-send').click();
    await messages('program').filter({ hasText: 'time zone' }).waitFor();
    await byId('preview-input').fill('Europe/Berlin');
    await byId('preview-send').click();
    await messages('program').filter({ hasText: 'protect your first hour' }).waitFor();
    await until('the step in the side panel', async () => (await byId('preview-step').textContent()) === 'morning_task');
    await byId('preview-next-timer').waitFor();
    // The check-in is due a day later; in the test user's quiet hours the policy defers it to the
    // morning, and a second fast-forward jumps there.
    const checkIn = dash.locator('[data-testid="preview-message"]').filter({ hasText: 'How did your first hour go' });
    for (let press = 1; ; press += 1) {
      await byId('fast-forward').click();
      await until('the fast-forward result', async () => (await byId('fast-forward-result').textContent()).startsWith('Fired'));
      if (await checkIn.waitFor({ timeout: 3000 }).then(() => true, () => false)) break;
      const said = await byId('fast-forward-deferred').textContent();
      check(press < 3 && said.includes('deferred it to'), `the check-in came neither fired nor deferred: "${said}"`);
    }
    check((await messages('user').allTextContents()).some((t) => t.includes('Calmer mornings')), 'the chosen label shows as the user\'s message');
    // The answer to the check-in moves the program on to its `reflect` chat step, where the twin
    // answers it and talks with the test user.
    await byId('preview-input').fill('It went well, I read for twenty minutes.');
    await byId('preview-send').click();
    await until('the reflect step', async () => (await byId('preview-step').textContent()) === 'reflect');
    await until('the twin answers the check-in', async () => (await messages('twin').count()) > 0);
    await byId('preview-input').fill('What should I change tomorrow?');
    await byId('preview-send').click();
    await until('the twin answers in the preview', async () => (await messages('twin').count()) > 1);
    await shot(dash, 'test');
  });

  await step('stats: the counts are drawn as charts', async () => {
    await byId('nav-stats').click();
    await byId('svg-messages').waitFor();
    const bars = await byId('svg-messages').locator('rect.bar').count();
    check(bars === 28, `14 days × in/out bars, got ${bars}`);
    // Summed over the period, so a run across midnight (UTC) counts the same.
    const [inbound, outbound] = await byId('svg-messages').locator('rect.bar').evaluateAll((rects) => [0, 1].map((series) =>
      rects.filter((_, i) => i % 2 === series).reduce((sum, r) => sum + Number(r.dataset.value), 0)));
    check(inbound >= 10 && outbound >= 10, `the visitors' messages in and out: ${inbound}, ${outbound}`);
    check((await byId('svg-latency').locator('circle').count()) >= 1, 'a latency point for today');
    await byId('svg-nudges').waitFor();
    await byId('svg-active').waitFor();
    check((await byId('kpi-day').locator('strong').textContent()) === '3', 'three visitors wrote (the preview does not count)');
    await byId('chart-funnel').filter({ hasText: 'talk-to-maya' }).waitFor();
    const reached = await byId('svg-funnel').locator('rect.bar').evaluateAll((rects) => rects.map((r) => Number(r.dataset.value)));
    check(reached.length === 2 && reached[0] === 1, `one visitor reached talk-to-maya's handoff: ${reached}`);
    await shot(dash, 'stats', { fullPage: true });
  });

  await step('embed: the snippet is shown and copied', async () => {
    await byId('nav-embed').click();
    const snippet = await until('the snippet', async () => {
      const text = await byId('embed-snippet').textContent();
      return text.includes('widget.js') ? text : null;
    });
    const expected = `<script src="${TWIN}/widget.js" data-creator="${CREATOR}" async></script>`;
    check(snippet.trim() === expected, `the snippet loads the widget from the server's public URL: ${snippet}`);
    await byId('embed-copy').click();
    await until('"Copied."', async () => (await byId('embed-copied').textContent()) === 'Copied.');
    check((await dash.evaluate(() => navigator.clipboard.readText())) === snippet, 'the clipboard holds the snippet');
    await shot(dash, 'embed');
  });

  await step('a reload keeps the session; a spent refresh token returns to sign-in', async () => {
    await dash.reload();
    await byId('nav-live').waitFor();
    await dash.evaluate(() => sessionStorage.setItem('twin.refresh', 'spent'));
    await dash.reload();
    await byId('signin').waitFor();
  });

  await step('sign out ends the session', async () => {
    await byId('signin-email').fill(EMAIL);
    await byId('signin-password').fill(PASSWORD);
    await byId('signin-submit').click();
    await byId('signout').click();
    await byId('signin').waitFor();
    await dash.reload();
    await byId('signin').waitFor();
  });

  await step('an admin picks the creator to watch', async () => {
    await byId('signin-email').fill(ADMIN_EMAIL);
    await byId('signin-password').fill(PASSWORD);
    await byId('signin-submit').click();
    await dash.locator(`[data-testid="pick-creator"][data-slug="${CREATOR}"]`).click();
    await until('the creator\'s dashboard', async () => (await byId('creator-name').textContent()).includes(`@${CREATOR}`));
    check(new URL(dash.url()).hash === '', 'a new sign-in starts on the live list, not the last account\'s screen');
    await byId('conversation-row').first().waitFor();
    await byId('switch-creator').click();
    await byId('creator-picker').waitFor();
  });

  check(problems.length === 0, `errors in the pages:\n${problems.join('\n')}`);
  console.log('all browser checks passed');
} catch (error) {
  console.error(`FAILED at "${current}": ${error.stack ?? error}`);
  if (dashPage) {
    const path = join(tmpdir(), 'twin-browser-failure.png');
    await dashPage.screenshot({ path, fullPage: true }).then(() => console.error(`the dashboard at that moment: ${path}`), () => {});
  }
  if (problems.length) console.error(`page errors:\n${problems.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
