// The session and every REST call. The access token lives in memory only; the refresh token in
// sessionStorage (this tab, gone when it closes). `api()` refreshes a token about to expire,
// retries once after a 401, and turns problem+json answers into `ApiProblem`s a screen can show.

const REFRESH_KEY = 'twin.refresh';
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

export class ApiProblem extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** The signed-in account and its access token; `access` is null when signed out. */
export const session = { access: null, expiresAt: 0, account: null };

const signedOutListeners = new Set();
let refreshing = null;
let refreshTimer = null;

/** `fn(reason)` runs when the session ends (sign out, or a refresh that failed). */
export function onSignedOut(fn) {
  signedOutListeners.add(fn);
}

function keep(body) {
  session.access = body.access_token;
  session.expiresAt = Date.now() + body.expires_in * 1000;
  session.account = body.account;
  sessionStorage.setItem(REFRESH_KEY, body.refresh_token);
  clearTimeout(refreshTimer);
  const early = Math.max(5_000, body.expires_in * 1000 - EARLY_MS);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), early);
}

function end(reason) {
  session.access = null;
  session.account = null;
  session.expiresAt = 0;
  // The refresh token and what this account chose (creator, preview, period) go with the session.
  for (const key of Object.keys(sessionStorage)) if (key.startsWith('twin.')) sessionStorage.removeItem(key);
  clearTimeout(refreshTimer);
  for (const fn of signedOutListeners) fn(reason);
}

async function send(method, path, body, token) {
  const headers = { Accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiProblem(0, 'Network error', 'the server could not be reached');
  }
  const type = response.headers.get('content-type') ?? '';
  const data = response.status !== 204 && type.includes('json') ? await response.json().catch(() => null) : null;
  if (response.ok) return data;
  if (data && typeof data.title === 'string') throw new ApiProblem(response.status, data.title, data.detail ?? '');
  throw new ApiProblem(response.status, response.statusText || `HTTP ${response.status}`, '');
}

export async function login(email, password) {
  keep(await send('POST', '/v1/auth/login', { email, password }));
}

/** Signs in again from the tab's refresh token (a reload); false when there is none or it is spent. */
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return false;
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

/** One refresh at a time; a refused refresh token ends the session. */
export function refresh() {
  refreshing ??= (async () => {
    const token = sessionStorage.getItem(REFRESH_KEY);
    if (!token) throw new ApiProblem(401, 'Unauthorized', 'signed out');
    try {
      keep(await send('POST', '/v1/auth/refresh', { refresh_token: token }));
    } catch (error) {
      if (error.status === 401) end('Your session has ended. Please sign in again.');
      throw error;
    }
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** An access token good for a while yet (for sockets, which carry it in the URL). */
export async function freshToken() {
  if (!session.access || Date.now() > session.expiresAt - EARLY_MS / 2) await refresh();
  return session.access;
}

/** A REST call as the signed-in account: the JSON answer, or throws an `ApiProblem`. */
export async function api(method, path, body) {
  const token = await freshToken();
  try {
    return await send(method, path, body, token);
  } catch (error) {
    if (error.status !== 401) throw error;
    await refresh();
    try {
      return await send(method, path, body, session.access);
    } catch (again) {
      if (again.status === 401) end('Your session has ended. Please sign in again.');
      throw again;
    }
  }
}

export async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (token) await send('POST', '/v1/auth/logout', { refresh_token: token }).catch(() => {});
  end(null);
}

/** `/v1/creators/{slug}` + `rest`, with the slug escaped. */
export function creatorPath(slug, rest = '') {
  return `/v1/creators/${encodeURIComponent(slug)}${rest}`;
}
