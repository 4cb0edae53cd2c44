// Reference portal page for the Microsoft 365 linking flow (local development only).
// Plain ES module, no build step, no dependencies. It calls the function app exactly as the real
// portal would: same-origin fetch of /api/..., JSON in and out, RFC 9457 problem details on errors,
// and an optional bearer token kept in sessionStorage.

const API = '/api';
const SANDBOX = '/sandbox/admin';
const TOKEN_STORAGE = 'portal.bearerToken';
const KEY_STORAGE = 'portal.currentKey';

const FORM_FIELDS = ['displayName', 'tenantId', 'applicationId', 'organizationName', 'cloud'];

const CHECK_STATUS = {
  pass: { icon: '✓', label: 'Passed' },
  warn: { icon: '!', label: 'Warning' },
  fail: { icon: '✗', label: 'Failed' },
  skipped: { icon: '–', label: 'Skipped' },
  error: { icon: '⟳', label: 'Error, try again' },
};

const REPORT_STATUS = {
  connected: 'Connected',
  action_required: 'Action required',
  error: 'Could not finish, try again',
};

const ACCOUNT_STATUS = {
  pending: 'Pending',
  connected: 'Connected',
  action_required: 'Action required',
};

const AUDIENCE_LABEL = {
  AzureADMyOrg: 'Single tenant (this organisation only)',
  AzureADMultipleOrgs: 'Multi-tenant (any organisation)',
  AzureADandPersonalMicrosoftAccount: 'Any organisation and personal Microsoft accounts',
  PersonalMicrosoftAccount: 'Personal Microsoft accounts only',
};

const USED_BY_LABEL = {
  'this-account': 'This account',
  rotation: 'Renewal in progress',
  previous: 'Previous (kept for rollback)',
  other: 'Not used by this account',
};

const ROTATION_STATUS = {
  awaiting_upload: 'Awaiting upload',
  completed: 'Completed',
  cancelled: 'Cancelled',
  failed: 'Failed',
};

// How far automatic renewal's own Graph writes got (rotation.appRegistration.addKey/removeKey).
const GRAPH_WRITE_LABEL = {
  pending: 'to do',
  done: 'done',
  refused: 'refused by Microsoft Graph (see below)',
};

// The account's credential (account.credential) and a key's kind (key.kind).
const CREDENTIAL_LABEL = {
  certificate: 'Certificate',
  federated: 'Federated credential',
};

const CLOUD_LABEL = {
  auto: 'Auto detect',
  global: 'Global',
  usgov: 'US Gov GCC High',
  usgovdod: 'US Gov DoD',
  china: 'China',
};

const state = {
  key: null, // the key made by "Generate public key & Download" (public data only)
  accounts: [],
  accountsNext: null, // the list's nextLink: more accounts follow
  historyNext: null, // the shown history's nextLink
  reportAccountId: null,
  // The account shown under "Certificate renewal", as GET /api/accounts/{id} answered it, and
  // that answer's ETag: the Automatic renewal switch sends it as If-Match.
  renewal: null, // { account, etag }
  // Federated credentials (issuer, subject, audience, name) by keyId, read once per key: a
  // rotation's or an account's key shows them without a request per render.
  federations: new Map(),
  busy: false,
};

// ---------------------------------------------------------------------------------------------
// Small DOM helpers (text only: data from the API never goes through innerHTML)

const $ = (selector, root = document) => root.querySelector(selector);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function focusOn(node) {
  if (!node) return;
  if (!node.hasAttribute('tabindex') && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(node.tagName)) {
    node.setAttribute('tabindex', '-1');
  }
  node.focus({ preventScroll: true });
  const reduce = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches;
  node.scrollIntoView({ block: 'start', behavior: reduce ? 'auto' : 'smooth' });
}

let statusTimer = 0;
function announce(message) {
  const region = $('#status');
  // Clear first so that the same message said twice is announced twice.
  region.textContent = '';
  region.classList.remove('faded');
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    region.textContent = message;
    // The text stays (for assistive technology and tests); the toast fades after a while.
    statusTimer = setTimeout(() => region.classList.add('faded'), 10_000);
  }, 50);
}

function formatDateTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

function formatDate(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }).format(date);
}

function timeElement(value, withTime = true) {
  if (!value) return h('span', { class: 'muted' }, withTime ? 'Never' : '—');
  return h('time', { datetime: value, title: value }, withTime ? formatDateTime(value) : formatDate(value));
}

// ---------------------------------------------------------------------------------------------
// HTTP

function getToken() {
  try { return sessionStorage.getItem(TOKEN_STORAGE) || ''; } catch { return ''; }
}

class ApiError extends Error {
  // kind: 'network' (no answer), 'unexpected' (an answer that is not the API's), 'problem'
  constructor(kind, { status = 0, problem = null, retryAfter = null, url = '' } = {}) {
    super(problem?.detail || problem?.title || kind);
    this.kind = kind;
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
    this.url = url;
  }
}

async function request(url, { method = 'GET', json, body, headers = {}, auth = true, raw = false } = {}) {
  const init = { method, headers: { Accept: 'application/json, application/problem+json', ...headers }, cache: 'no-store' };
  if (json !== undefined) {
    // A caller may name a JSON media type of its own (a PATCH sends application/merge-patch+json).
    init.headers['Content-Type'] = headers['Content-Type'] || 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const token = auth ? getToken() : '';
  if (token) init.headers.Authorization = `Bearer ${token}`;

  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError('network', { url });
  }
  if (raw && response.ok) return response;

  const type = response.headers.get('Content-Type') || '';
  let data = null;
  let isJson = false;
  if (response.status !== 204 && /\bjson\b|\+json/i.test(type)) {
    try { data = await response.json(); isJson = true; } catch { data = null; }
  }

  if (response.ok) {
    if (response.status === 204) return null;
    if (!isJson) throw new ApiError('unexpected', { status: response.status, url });
    return data;
  }

  const retryAfter = response.headers.get('Retry-After');
  if (isJson && data && typeof data === 'object') {
    const problem = normaliseProblem(data, response.status);
    throw new ApiError('problem', { status: response.status, problem, retryAfter, url });
  }
  // Not problem details: something other than the function app answered (a static server, a proxy).
  throw new ApiError('unexpected', { status: response.status, retryAfter, url });
}

function normaliseProblem(data, status) {
  // Problem details per RFC 9457; tolerate other JSON error shapes (the sandbox answers Graph-like errors).
  if (data.error && typeof data.error === 'object') {
    return { title: data.error.code || 'Error', detail: data.error.message || '', status, errors: [] };
  }
  if (typeof data.error === 'string') {
    return { title: data.error, detail: data.error_description || data.message || '', status, errors: [] };
  }
  return {
    ...data,
    status: data.status || status,
    errors: Array.isArray(data.errors) ? data.errors : [],
  };
}

const api = {
  createKey: (body) => request(`${API}/keys`, { method: 'POST', json: body }),
  keyUrl: (keyId, format) => `${API}/keys/${encodeURIComponent(keyId)}${format ? `?format=${format}` : ''}`,
  createAccount: (body) => request(`${API}/accounts`, { method: 'POST', json: body }),
  listAccounts: () => request(`${API}/accounts`),
  // nextLink is relative to the host (`/api/...`): followed as it is, never built here.
  follow: (nextLink) => request(new URL(nextLink, window.location.href).href),
  accountHistory: (id) => request(`${API}/accounts/${encodeURIComponent(id)}/history?top=20`),
  getAccount: (id) => request(`${API}/accounts/${encodeURIComponent(id)}`),
  deleteAccount: (id) => request(`${API}/accounts/${encodeURIComponent(id)}`, { method: 'DELETE' }),
  verifyAccount: (id) => request(`${API}/accounts/${encodeURIComponent(id)}/verify`, { method: 'POST' }),
  onboarding: () => request(`${API}/onboarding`),
  // One account with its ETag: the version a later conditional PATCH names in If-Match.
  getAccountTagged: (id) => tagged(`${API}/accounts/${encodeURIComponent(id)}`),
  patchAccount: (id, changes, etag) => tagged(`${API}/accounts/${encodeURIComponent(id)}`, {
    method: 'PATCH',
    json: changes,
    headers: { 'Content-Type': 'application/merge-patch+json', ...(etag ? { 'If-Match': etag } : {}) },
  }),
  getKey: (keyId) => request(`${API}/keys/${encodeURIComponent(keyId)}`),
  // body: {} renews the current kind of credential; {kind: 'federated'|'certificate'} moves to that kind.
  startRotation: (id, body = {}) => request(`${API}/accounts/${encodeURIComponent(id)}/rotation`, { method: 'POST', json: body }),
  cancelRotation: (id) => request(`${API}/accounts/${encodeURIComponent(id)}/rotation`, { method: 'DELETE' }),
};

/** A JSON answer with its ETag header: { data, etag }. Errors are thrown as `request` throws them. */
async function tagged(url, options = {}) {
  const response = await request(url, { ...options, raw: true });
  let data;
  try { data = await response.json(); } catch { throw new ApiError('unexpected', { status: response.status, url }); }
  return { data, etag: response.headers.get('ETag') || '' };
}

// ---------------------------------------------------------------------------------------------
// Errors: summary at the top, messages next to the inputs

function clearErrors() {
  const summary = $('#errors');
  summary.hidden = true;
  $('#errors-detail').textContent = '';
  $('#errors-list').replaceChildren();
  $('#errors-actions').replaceChildren();
  for (const id of [...FORM_FIELDS, 'keyId', 'credentialKind']) {
    const message = $(`#${id}-error`);
    if (message) { message.hidden = true; message.textContent = ''; }
    const input = document.getElementById(id);
    if (input && input.tagName !== 'BUTTON') input.removeAttribute('aria-invalid');
  }
}

function fieldName(raw) {
  // "tenantId", "body.tenantId", "/tenantId", "$.tenantId" all name the tenantId input.
  const parts = String(raw || '').split(/[./[\]]+/).filter(Boolean);
  return parts.length ? parts[parts.length - 1] : '';
}

function describeError(err) {
  if (err.kind === 'network') {
    return {
      title: 'Cannot reach the API',
      detail: 'The page could not reach the function app at /api. Check that the local function host is running ' +
        '(make run) and try again.',
    };
  }
  if (err.kind === 'unexpected') {
    return {
      title: 'Cannot reach the API',
      detail: `Something other than the function app answered ${err.url}` +
        (err.status ? ` (HTTP ${err.status})` : '') + '. Check that the page is served by the local function host.',
    };
  }
  const problem = err.problem || {};
  let detail = problem.detail || problem.title || `The request failed (HTTP ${err.status}).`;
  if (err.status === 401) {
    detail = `${problem.detail || 'You are not signed in.'} Enter a bearer token under Settings, or run the host with AUTH_MODE=local.`;
  }
  if (err.status === 503 && err.retryAfter) {
    detail += ` Try again in ${err.retryAfter} seconds.`;
  }
  return { title: problem.title || 'Request failed', detail };
}

/**
 * Shows an error: the summary (focused), and each errors[] entry next to its input.
 * `fieldTargets` maps API field names to element ids on this page.
 */
function showError(err, { context = '', fieldTargets = {}, actions = [] } = {}) {
  clearErrors();
  const { title, detail } = describeError(err);
  const summary = $('#errors');
  $('#errors-heading').textContent = title;
  $('#errors-detail').textContent = context ? `${context}: ${detail}` : detail;

  const list = $('#errors-list');
  for (const entry of err.problem?.errors || []) {
    const name = fieldName(entry.field);
    const targetId = fieldTargets[name];
    const message = entry.message || 'is not valid';
    const label = targetId ? labelText(targetId) : (name || 'Request');
    if (targetId) {
      const slot = $(`#${targetId}-error`);
      if (slot) {
        slot.textContent = `${label}: ${message}`;
        slot.hidden = false;
      }
      const input = document.getElementById(targetId);
      if (input && input.tagName !== 'BUTTON') input.setAttribute('aria-invalid', 'true');
      const focusTarget = targetId === 'keyId' ? 'generate-key' : targetId;
      list.append(h('li', {}, h('a', {
        href: `#${focusTarget}`,
        onclick: (event) => { event.preventDefault(); focusOn(document.getElementById(focusTarget)); },
      }, `${label}: ${message}`)));
    } else {
      list.append(h('li', {}, `${label}: ${message}`));
    }
  }

  const actionRow = $('#errors-actions');
  if (err.kind === 'network' || err.kind === 'unexpected') showBanner(err);
  if (err.status === 401) {
    actions = [...actions, { label: 'Open settings', run: () => { $('#settings').open = true; focusOn($('#token')); } }];
  }
  for (const action of actions) {
    actionRow.append(h('button', { type: 'button', class: 'button secondary', onclick: action.run }, action.label));
  }

  summary.hidden = false;
  announce(`${title}. ${$('#errors-detail').textContent}`);
  focusOn(summary);
}

function labelText(id) {
  if (id === 'keyId') return state.key?.kind === 'federated' || formValues().kind === 'federated' ? 'Credential' : 'Public key';
  if (id === 'credentialKind') return 'Credential';
  const label = document.querySelector(`label[for="${id}"]`);
  if (!label) return id;
  const clone = label.cloneNode(true);
  clone.querySelectorAll('.optional').forEach((n) => n.remove());
  return clone.textContent.trim();
}

function showLocalError(title, detail, fieldId) {
  showError(new ApiError('problem', {
    problem: { title, detail, errors: fieldId ? [{ field: fieldId, message: detail }] : [] },
  }), { fieldTargets: fieldId ? { [fieldId]: fieldId } : {} });
}

function showBanner(err) {
  const banner = $('#api-banner');
  const text = $('#api-banner-text');
  if (!err) { banner.hidden = true; return; }
  if (err.status === 401) {
    text.textContent = 'The API needs a signed-in caller. Enter a bearer token under Settings, ' +
      'or run the local host with AUTH_MODE=local.';
  } else {
    text.textContent = 'Cannot reach the API. The page works, but nothing can be linked until the function app ' +
      'answers at /api. Start the local host (make run), then press Try again.';
  }
  banner.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Busy guard: buttons stay focusable (aria-disabled) while a request runs

async function withBusy(button, work) {
  if (state.busy) return;
  state.busy = true;
  document.body.setAttribute('aria-busy', 'true');
  if (button) button.setAttribute('aria-disabled', 'true');
  try {
    await work();
  } finally {
    state.busy = false;
    document.body.removeAttribute('aria-busy');
    if (button) button.removeAttribute('aria-disabled');
  }
}

// ---------------------------------------------------------------------------------------------
// Onboarding and accounts

function setView(onboarding) {
  const required = Boolean(onboarding?.required);
  document.body.dataset.view = onboarding ? (required ? 'onboarding' : 'integrations') : 'integrations';
  $('#view-title').textContent = required ? 'Choose your cloud to get started' : 'Integrations';
  $('#view-intro').textContent = !onboarding
    ? 'Connect the cloud accounts the portal should watch.'
    : required
      ? 'Link your first account so the portal can watch it. Microsoft 365 is available in this demo.'
      : 'Your linked cloud accounts. Link another one or check that access still works.';
  $('#choose-microsoft').textContent = required ? 'Microsoft 365 – get started' : 'Microsoft 365';
  document.title = `${required ? 'Get started' : 'Integrations'} – Portal (local reference)`;
}

async function loadOnboarding() {
  try {
    setView(await api.onboarding());
    return true;
  } catch (err) {
    setView(null);
    if (err.kind !== 'problem' || err.status === 401) showBanner(err);
    return false;
  }
}

async function loadAccounts() {
  try {
    const data = await api.listAccounts();
    state.accounts = Array.isArray(data?.value) ? data.value : [];
    state.accountsNext = data?.nextLink || null;
    renderAccounts();
    return true;
  } catch (err) {
    state.accounts = [];
    state.accountsNext = null;
    renderAccounts(err);
    if (err.kind !== 'problem' || err.status === 401) showBanner(err);
    return false;
  }
}

async function loadMoreAccounts(button) {
  if (!state.accountsNext) return;
  await withBusy(button, async () => {
    try {
      const data = await api.follow(state.accountsNext);
      const shown = new Set(state.accounts.map((a) => a.id));
      state.accounts.push(...(data.value || []).filter((a) => !shown.has(a.id)));
      state.accountsNext = data.nextLink || null;
      renderAccounts();
      announce(`${state.accounts.length} accounts shown.`);
    } catch (err) {
      showError(err, { context: 'More accounts could not be loaded' });
    }
  });
}

const EVENT_LABEL = {
  linked: 'Linked', updated: 'Changed', verified: 'Verified', unlinked: 'Unlinked',
  rotation_started: 'Certificate renewal started', rotation_completed: 'Certificate renewed',
  rotation_cancelled: 'Certificate renewal cancelled', rotation_failed: 'Certificate renewal failed',
  certificate_expiring: 'Certificate expiring',
};

function renderEvent(event) {
  const who = event.actor?.kind === 'timer' ? `the scheduled check (${event.actor.id})` : `user ${event.actor?.id || 'unknown'}`;
  const change = event.previousStatus && event.status && event.previousStatus !== event.status
    ? ` · ${ACCOUNT_STATUS[event.previousStatus] || event.previousStatus} → ${ACCOUNT_STATUS[event.status] || event.status}`
    : (event.status ? ` · ${ACCOUNT_STATUS[event.status] || event.status}` : '');
  return h('li', { 'data-event-type': event.type },
    h('strong', {}, EVENT_LABEL[event.type] || event.type), ' ', timeElement(event.at),
    h('span', { class: 'muted' }, ` by ${who}${change}${event.detail ? ` · ${event.detail}` : ''}`));
}

async function showHistory(accountId, button) {
  const account = accountById(accountId);
  await withBusy(button, async () => {
    try {
      const data = await api.accountHistory(accountId);
      state.historyNext = data.nextLink || null;
      $('#history-heading').textContent = `History: ${account?.displayName || accountId}`;
      $('#history').replaceChildren(...(data.value || []).map(renderEvent));
      $('#history-more').hidden = !state.historyNext;
      $('#history-section').hidden = false;
      focusOn($('#history-heading'));
    } catch (err) {
      showError(err, { context: 'The history could not be loaded' });
    }
  });
}

async function loadMoreHistory(button) {
  if (!state.historyNext) return;
  await withBusy(button, async () => {
    try {
      const data = await api.follow(state.historyNext);
      $('#history').append(...(data.value || []).map(renderEvent));
      state.historyNext = data.nextLink || null;
      $('#history-more').hidden = !state.historyNext;
    } catch (err) {
      showError(err, { context: 'Older events could not be loaded' });
    }
  });
}

async function refreshAll() {
  const [a, b] = await Promise.all([loadOnboarding(), loadAccounts(), reloadRenewal()]);
  if (a && b) showBanner(null);
  // Hide the list on the first-time screen while there is nothing to show.
  $('#accounts-section').hidden = document.body.dataset.view === 'onboarding' && state.accounts.length === 0;
}

function statusBadge(status, labels) {
  return h('span', { class: `badge badge-${status || 'unknown'}`, 'data-status': status }, labels[status] || status || 'Unknown');
}

function renderAccounts(err) {
  const body = $('#accounts');
  const table = $('#accounts-table');
  const empty = $('#accounts-empty');
  body.replaceChildren();
  if (err) {
    $('#accounts-more').hidden = true;
    table.hidden = true;
    empty.hidden = false;
    empty.textContent = err.kind === 'problem' && err.status !== 401
      ? `Linked accounts could not be loaded: ${describeError(err).detail}`
      : 'Linked accounts cannot be shown until the API answers.';
    return;
  }
  empty.textContent = 'No Microsoft account is linked yet.';
  empty.hidden = state.accounts.length > 0;
  table.hidden = state.accounts.length === 0;
  $('#accounts-more').hidden = !state.accountsNext;
  for (const account of state.accounts) {
    const name = account.displayName || account.id;
    const federated = credentialOf(account) === 'federated';
    const row = h('tr', {
      'data-account-id': account.id, 'data-status': account.status, tabindex: '-1',
      'data-rotation-status': account.rotation?.status, 'data-renewal': account.certificateRenewal,
      'data-credential': credentialOf(account),
    },
      h('th', { scope: 'row' },
        h('span', { class: 'account-name' }, name),
        account.organizationName ? h('span', { class: 'sub' }, account.organizationName) : null,
        account.cloud && account.cloud !== 'auto' ? h('span', { class: 'sub' }, CLOUD_LABEL[account.cloud] || account.cloud) : null),
      h('td', { class: 'mono' }, account.tenantId),
      h('td', {}, statusBadge(account.status, ACCOUNT_STATUS)),
      h('td', {}, timeElement(account.lastVerifiedAt)),
      h('td', { class: 'credential-cell' }, credentialSummary(account), renewalSummary(account)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'button secondary small reverify', 'aria-label': `Re-verify ${name}` }, 'Re-verify'),
        federated
          ? h('button', { type: 'button', class: 'button link small show-renewal', 'aria-label': `Credential of ${name}` },
            'Credential')
          : h('button', { type: 'button', class: 'button link small show-renewal', 'aria-label': `Certificate renewal of ${name}` },
            'Certificate renewal'),
        account.lastVerification
          ? h('button', { type: 'button', class: 'button link small show-report', 'aria-label': `Show report of ${name}` }, 'Show report')
          : null,
        h('button', { type: 'button', class: 'button link small show-history', 'aria-label': `Show history of ${name}` }, 'History'),
        h('button', { type: 'button', class: 'button danger small unlink', 'aria-label': `Unlink ${name}` }, 'Unlink')));
    body.append(row);
  }
}

/** The account's kind of credential: accounts from before federated credentials are certificates. */
function credentialOf(account) {
  return account?.credential === 'federated' ? 'federated' : 'certificate';
}

/**
 * Whether a rotation moves the account to the other kind of credential (else it renews a
 * certificate). A federated credential is never renewed; once a move completed, the account
 * already has the new kind and only a certificate replaced (previousThumbprint) tells a renewal.
 */
function isMove(account, rotation) {
  if (!rotation) return false;
  const to = rotationKind(rotation);
  if (to === 'federated') return true;
  if (rotation.status !== 'completed') return credentialOf(account) !== to;
  return !rotation.previousThumbprint && Boolean(rotation.previousKeyId);
}

/** The kind of credential a rotation moves to (its new key's kind). */
function rotationKind(rotation) {
  return rotation?.key?.kind === 'federated' || rotation?.kind === 'federated' ? 'federated' : 'certificate';
}

// The Credential column: a certificate's expiry date, or a federated credential (which never expires).
function credentialSummary(account) {
  if (credentialOf(account) === 'federated') {
    return [h('span', { class: 'credential-kind' }, CREDENTIAL_LABEL.federated),
      h('span', { class: 'sub' }, 'Does not expire')];
  }
  return [h('span', { class: 'sub credential-kind' }, 'Certificate, expires'),
    timeElement(account.certificateNotAfter, false)];
}

// Under the credential: a renewal (or a move to another kind) in progress, and whether renewal is automatic.
function renewalSummary(account) {
  const rotation = account.rotation;
  const bits = [];
  const moving = isMove(account, rotation);
  if (rotation?.status === 'awaiting_upload') {
    bits.push(moving ? `Move to ${CREDENTIAL_LABEL[rotationKind(rotation)].toLowerCase()}: ${ROTATION_STATUS.awaiting_upload}`
      : `Renewal: ${ROTATION_STATUS.awaiting_upload}`);
  }
  else if (rotation?.status === 'completed' && !rotation.previousRetiredAt) bits.push('Renewed');
  if (account.certificateRenewal === 'automatic') bits.push('Automatic renewal');
  return bits.length ? h('span', { class: 'sub renewal-summary' }, bits.join(' · ')) : null;
}

function accountById(id) {
  return state.accounts.find((a) => a.id === id);
}

async function reverify(accountId, button) {
  const account = accountById(accountId);
  await withBusy(button, async () => {
    clearErrors();
    announce(`Verifying ${account?.displayName || 'the account'}…`);
    try {
      const report = await api.verifyAccount(accountId);
      renderReport(report, account);
      await refreshAll();
    } catch (err) {
      showError(err, { context: 'Verification failed' });
      if (err.status === 404) await refreshAll();
    }
  });
}

async function unlink(accountId, button) {
  const account = accountById(accountId);
  const name = account?.displayName || 'this account';
  // eslint-disable-next-line no-alert
  const what = credentialOf(account) === 'federated' ? 'federated credential' : 'certificate';
  if (!window.confirm(`Unlink “${name}”? The portal loses its read access to this tenant. ` +
      `The ${what} stays on your app registration until you remove it there.`)) {
    announce('Unlink cancelled.');
    return;
  }
  await withBusy(button, async () => {
    clearErrors();
    try {
      await api.deleteAccount(accountId);
      if (state.reportAccountId === accountId) hideReport();
      if (state.renewal?.account.id === accountId) hideRenewal();
      if (state.key && state.key.accountId === accountId) forgetKey();
      await refreshAll();
      announce(`Unlinked ${name}.`);
      focusOn($('#accounts-section').hidden ? $('#view-title') : $('#accounts-heading'));
    } catch (err) {
      if (err.status === 404) await refreshAll();
      showError(err, { context: `Could not unlink ${name}` });
    }
  });
}

async function openAccount(accountId) {
  clearErrors();
  try {
    const account = await api.getAccount(accountId);
    await refreshAll();
    if (account.lastVerification) {
      renderReport(account.lastVerification, account);
      return;
    }
    const row = document.querySelector(`[data-account-id="${CSS.escape(accountId)}"]`);
    announce(`${account.displayName} is linked and not verified yet. Press Re-verify to check it.`);
    if (row) { row.classList.add('highlight'); focusOn(row.querySelector('.reverify') || row); }
  } catch (err) {
    showError(err, { context: 'Could not open the account' });
  }
}

// ---------------------------------------------------------------------------------------------
// Verification report

function hideReport() {
  state.reportAccountId = null;
  $('#report-section').hidden = true;
  $('#report').replaceChildren(h('h2', { id: 'report-heading', tabindex: '-1' }, 'Verification report'));
}

function renderReport(report, account) {
  const container = $('#report');
  const name = account?.displayName || report.accountId || 'account';
  state.reportAccountId = report.accountId || account?.id || null;
  container.dataset.status = report.status || '';
  container.dataset.reportFor = state.reportAccountId || '';

  const checks = Array.isArray(report.checks) ? report.checks : [];
  const counts = checks.reduce((acc, c) => { acc[c.status] = (acc[c.status] || 0) + 1; return acc; }, {});
  const summaryBits = ['fail', 'warn', 'error', 'skipped', 'pass']
    .filter((s) => counts[s]).map((s) => `${counts[s]} ${CHECK_STATUS[s].label.toLowerCase().replace(', try again', '')}`);

  const heading = h('h2', { id: 'report-heading', tabindex: '-1' }, `Verification report: ${name}`);
  const overall = h('p', { class: 'overall' },
    h('span', { class: 'visually-hidden' }, 'Overall status: '),
    h('span', { id: 'report-status', class: `badge badge-${report.status}`, 'data-status': report.status },
      REPORT_STATUS[report.status] || report.status),
    ' ',
    h('span', { class: 'muted' }, `Checked ${formatDateTime(report.checkedAt)}`,
      Number.isFinite(report.durationMs) ? ` in ${(report.durationMs / 1000).toFixed(1)} s` : '',
      summaryBits.length ? ` · ${summaryBits.join(', ')}` : ''));

  const advice = {
    connected: 'Everything the guide asks for is in place. The portal now reads this tenant with read-only access.',
    action_required: 'Fix the failed checks in the Microsoft Entra admin center as described, then verify again.',
    error: 'Some checks could not run because a service did not answer. Nothing is wrong with your setup yet: try again.',
  }[report.status];

  const list = h('ol', { class: 'checks' }, checks.map(renderCheck));

  const facts = h('dl', { class: 'facts report-facts' });
  if (report.organization) {
    facts.append(h('dt', {}, 'Organisation'), h('dd', {}, report.organization.displayName || report.organization.id || '—'));
    const domains = report.organization.verifiedDomains || [];
    if (domains.length) facts.append(h('dt', {}, 'Verified domains'), h('dd', {}, domains.join(', ')));
  }
  if (account) {
    facts.append(h('dt', {}, 'Credential'),
      h('dd', { id: 'report-credential', 'data-credential': credentialOf(account) }, CREDENTIAL_LABEL[credentialOf(account)]));
  }
  facts.append(
    h('dt', {}, 'Granted permissions'),
    h('dd', {}, (report.grantedPermissions || []).join(', ') || 'none seen'),
    h('dt', {}, 'Directory roles'),
    h('dd', {}, (report.directoryRoles || []).join(', ') || 'none seen'));
  if (report.rotation) {
    const rotation = report.rotation;
    facts.append(h('dt', {}, 'Certificate renewal'),
      h('dd', { id: 'report-rotation', 'data-status': rotation.status },
        ROTATION_STATUS[rotation.status] || rotation.status, rotation.detail ? ` · ${rotation.detail}` : ''));
  }

  const registration = renderRegistration(report.appRegistration, account);

  const id = state.reportAccountId;
  const again = id
    ? h('div', { class: 'button-row' },
      h('button', { type: 'button', id: 'report-reverify', class: 'button secondary',
        onclick: (e) => reverify(id, e.currentTarget) }, report.status === 'connected' ? 'Verify again' : 'Verify again after fixing'))
    : null;

  container.replaceChildren(heading, overall, advice ? h('p', { class: 'advice' }, advice) : null, list, facts,
    registration, again);
  $('#report-section').hidden = false;
  announce(`Verification of ${name}: ${REPORT_STATUS[report.status] || report.status}.`);
  focusOn(heading);
}

// The app registration as Graph showed it: audience, client secrets, and every certificate and
// federated credential with whose it is (this account's, a renewal's, the previous one, or another).
function renderRegistration(registration, account) {
  const section = h('section', { id: 'app-registration', class: 'app-registration', 'aria-labelledby': 'app-registration-heading' },
    h('h3', { id: 'app-registration-heading' }, 'App registration'));
  if (!registration) {
    section.append(h('p', { class: 'muted' }, 'The app registration could not be read: see the app registration checks above.'));
    return section;
  }
  const secrets = Number(registration.clientSecrets) || 0;
  const uses = credentialOf(account) === 'federated' ? 'its federated credential' : 'the certificate';
  section.append(h('dl', { class: 'facts' },
    h('dt', {}, 'Supported account types'),
    h('dd', { id: 'app-audience' }, AUDIENCE_LABEL[registration.signInAudience] || registration.signInAudience || 'not said'),
    h('dt', {}, 'Client secrets'),
    h('dd', { id: 'app-secrets', 'data-count': String(secrets) },
      secrets ? `${secrets} (remove ${secrets === 1 ? 'it' : 'them'}: the portal uses only ${uses})` : 'none')));
  section.append(registrationCertificates(registration.certificates));
  const federated = registrationFederatedCredentials(registration.federatedCredentials);
  if (federated) section.append(federated);
  return section;
}

function registrationCertificates(certificates) {
  if (!Array.isArray(certificates) || !certificates.length) {
    return h('p', { class: 'muted', id: 'app-no-certificates' }, 'No certificate is on the app registration.');
  }
  const now = Date.now();
  const rows = certificates.map((c) => {
    const expired = c.notAfter && Date.parse(c.notAfter) < now;
    return h('tr', { 'data-thumbprint': c.thumbprint || '', 'data-used-by': c.usedBy || 'other' },
      h('td', {}, h('code', {}, c.thumbprint || '—')),
      h('td', {}, c.notAfter ? timeElement(c.notAfter, false) : '—', expired ? h('span', { class: 'expired' }, ' (expired)') : null),
      h('td', {}, USED_BY_LABEL[c.usedBy] || c.usedBy || '—'));
  });
  return h('div', { class: 'table-wrap' },
    h('table', { id: 'app-certificates' },
      h('caption', {}, 'Certificates on the app registration'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Thumbprint (SHA-1)'),
        h('th', { scope: 'col' }, 'Expires'),
        h('th', { scope: 'col' }, 'Used by'))),
      h('tbody', {}, rows)));
}

// Absent from reports made before federated credentials: then nothing is shown.
function registrationFederatedCredentials(credentials) {
  if (!Array.isArray(credentials)) return null;
  if (!credentials.length) {
    return h('p', { class: 'muted', id: 'app-no-federated-credentials' }, 'No federated credential is on the app registration.');
  }
  const rows = credentials.map((c) => h('tr', {
    'data-credential-name': c.name || '', 'data-subject': c.subject || '', 'data-used-by': c.usedBy || 'other',
  },
  h('td', {}, c.name || '—'),
  h('td', {}, h('code', {}, c.issuer || '—')),
  h('td', {}, h('code', {}, c.subject || '—')),
  h('td', {}, h('code', {}, (c.audiences || []).join(', ') || '—')),
  h('td', {}, USED_BY_LABEL[c.usedBy] || c.usedBy || '—')));
  return h('div', { class: 'table-wrap' },
    h('table', { id: 'app-federated-credentials' },
      h('caption', {}, 'Federated credentials on the app registration'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Name'),
        h('th', { scope: 'col' }, 'Issuer'),
        h('th', { scope: 'col' }, 'Subject identifier'),
        h('th', { scope: 'col' }, 'Audience'),
        h('th', { scope: 'col' }, 'Used by'))),
      h('tbody', {}, rows)));
}

function renderCheck(check) {
  const meta = CHECK_STATUS[check.status] || { icon: '?', label: check.status };
  const showFix = check.status === 'fail' || check.status === 'warn';
  return h('li', { class: `check check-${check.status}`, 'data-check-id': check.id, 'data-status': check.status },
    h('span', { class: 'check-icon', 'aria-hidden': 'true' }, meta.icon),
    h('div', { class: 'check-body' },
      h('p', { class: 'check-title' },
        h('span', { class: 'check-label' }, meta.label), ' ',
        h('span', {}, check.title || check.id)),
      check.detail ? h('p', { class: 'check-detail' }, check.detail) : null,
      showFix && check.remediation
        ? h('p', { class: 'check-remediation' }, h('strong', {}, 'How to fix: '), check.remediation) : null,
      (showFix || check.status === 'error') && check.code
        ? h('p', { class: 'check-code' }, 'Code: ', h('code', {}, check.code)) : null,
      check.status === 'error' && check.retryable
        ? h('p', { class: 'check-retry' }, 'Temporary problem: verify again in a moment.') : null));
}

// ---------------------------------------------------------------------------------------------
// Certificate renewal of one account: the Automatic renewal switch, Renew, and the rotation

function hideRenewal() {
  state.renewal = null;
  $('#renewal-section').hidden = true;
  $('#renewal-section').removeAttribute('data-renewal-for');
}

/** Opens the renewal panel of an account, read fresh (with its ETag). */
async function openRenewal(accountId, button) {
  await withBusy(button, async () => {
    clearErrors();
    try {
      const { data, etag } = await api.getAccountTagged(accountId);
      state.renewal = { account: data, etag };
      renderRenewal();
      $('#renewal-section').hidden = false;
      focusOn($('#renewal-heading'));
    } catch (err) {
      showError(err, { context: 'The certificate renewal could not be shown' });
      if (err.status === 404) await refreshAll();
    }
  });
}

/** Reads the shown account again (after a change anywhere on the page); quiet on failure. */
async function reloadRenewal() {
  const id = state.renewal?.account.id;
  if (!id) return true;
  try {
    const { data, etag } = await api.getAccountTagged(id);
    if (state.renewal?.account.id === id) {
      state.renewal = { account: data, etag };
      renderRenewal();
    }
  } catch (err) {
    if (err.status === 404) hideRenewal(); // unlinked meanwhile
  }
  return true;
}

function renderRenewal() {
  const account = state.renewal?.account;
  if (!account) return;
  const name = account.displayName || account.id;
  const credential = credentialOf(account);
  const federated = credential === 'federated';
  const section = $('#renewal-section');
  section.dataset.renewalFor = account.id;
  section.dataset.accountCredential = credential;
  $('#renewal-heading').textContent = federated ? `Credential: ${name}` : `Certificate renewal: ${name}`;
  const kind = $('#renewal-credential');
  kind.textContent = CREDENTIAL_LABEL[credential];
  kind.dataset.kind = credential;
  for (const node of section.querySelectorAll('[data-credential]')) node.hidden = node.dataset.credential !== credential;
  $('#renewal-current-thumbprint').textContent = account.thumbprint || '—';
  const expiry = $('#renewal-current-expiry');
  expiry.textContent = formatDate(account.certificateNotAfter);
  expiry.setAttribute('datetime', account.certificateNotAfter || '');
  renderCurrentFederation(account);
  $('#renewal-start').hidden = federated;
  $('#move-federated').hidden = federated;
  $('#move-federated-hint').hidden = federated;
  $('#move-certificate').hidden = !federated;
  $('#move-certificate-hint').hidden = !federated;
  const automatic = account.certificateRenewal === 'automatic';
  const toggle = $('#renewal-automatic');
  toggle.checked = automatic;
  $('#renewal-automatic-state').textContent = automatic ? 'On' : 'Off';
  renderRotation(account);
  renderSandboxRenewalTarget();
}

// A federated account's current credential: issuer, subject and audience, as its key says.
function renderCurrentFederation(account) {
  const box = $('#renewal-current-federation');
  const federation = credentialOf(account) === 'federated' ? knownFederation(account.keyId, renderRenewal) : null;
  box.hidden = !federation;
  box.replaceChildren(...(federation ? federationFacts(federation, 'renewal-current') : []));
}

/**
 * The federation of a key: from the key resource when it carries one, else read once
 * (GET /api/keys/{keyId}) and `then` called to render again. Null until known.
 */
function knownFederation(keyId, then, key = null) {
  if (key?.federation) return key.federation;
  if (!keyId) return null;
  const known = state.federations.get(keyId);
  if (known !== undefined) return known === 'loading' ? null : known;
  state.federations.set(keyId, 'loading');
  api.getKey(keyId)
    .then((read) => { state.federations.set(keyId, read?.federation || null); })
    .catch(() => { state.federations.set(keyId, null); })
    .then(() => then());
  return null;
}

/** Issuer, subject identifier, audience and name, each with a copy button; ids prefixed by `prefix`. */
function federationFacts(federation, prefix) {
  const rows = [
    ['issuer', 'Issuer', federation.issuer],
    ['subject', 'Subject identifier', federation.subject],
    ['audience', 'Audience', federation.audience || (federation.audiences || [])[0]],
    ['name', 'Name', federation.name],
  ];
  return rows.flatMap(([id, label, value]) => [
    h('dt', {}, label),
    h('dd', {},
      h('code', { id: `${prefix}-${id}`, 'data-testid': `${prefix}-${id}` }, value || '—'), ' ',
      value ? h('button', {
        type: 'button', class: 'button link copy', 'aria-label': `Copy ${label.toLowerCase()}`,
        onclick: () => copyText(value, label),
      }, 'Copy') : null),
  ]);
}

async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    announce(`${what} copied.`);
  } catch {
    announce(`Copy is not available; select the ${what.toLowerCase()} instead.`);
  }
}

/** The rotation's headline: a renewal of the certificate, or a move to the other kind. */
function rotationHeading(account, rotation) {
  const awaiting = rotation.status === 'awaiting_upload';
  if (!isMove(account, rotation)) return awaiting ? 'Renewal in progress' : 'Last renewal';
  const target = rotationKind(rotation) === 'federated' ? 'a federated credential' : 'a certificate';
  return awaiting ? `Move to ${target} in progress` : `Last move to ${target}`;
}

function renderRotation(account) {
  const box = $('#rotation');
  const rotation = account.rotation;
  box.replaceChildren();
  if (!rotation) {
    box.dataset.status = '';
    box.append(h('p', { class: 'muted', id: 'rotation-none' }, credentialOf(account) === 'federated'
      ? 'A federated credential does not expire and is never renewed. Move to a certificate only if your tenant ' +
        'cannot trust the portal as an issuer.'
      : 'No renewal yet. Renew certificate makes a new key and certificate; the current one keeps working until ' +
        'Microsoft Entra accepts the new one.'));
    return;
  }
  box.dataset.status = rotation.status;
  const kind = rotationKind(rotation);
  box.dataset.kind = kind;
  const key = rotation.key || {};
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'Status'),
    h('dd', {}, h('span', { id: 'rotation-status', class: `badge badge-${rotation.status}`, 'data-status': rotation.status },
      ROTATION_STATUS[rotation.status] || rotation.status)));
  if (kind === 'federated') {
    const federation = knownFederation(key.keyId, () => renderRotation(state.renewal?.account || account), key);
    facts.append(h('dt', {}, 'New credential'), h('dd', { id: 'rotation-kind' }, CREDENTIAL_LABEL.federated));
    if (federation) facts.append(...federationFacts(federation, 'rotation'));
  } else {
    facts.append(
      h('dt', {}, 'New certificate (SHA-1)'),
      h('dd', {}, h('code', { id: 'rotation-thumbprint' }, key.thumbprint || '—')),
      h('dt', {}, 'New certificate expires'),
      h('dd', {}, timeElement(key.notAfter, false)));
  }
  facts.append(
    h('dt', {}, 'Replaces'),
    h('dd', {}, rotation.previousThumbprint
      ? h('code', { id: 'rotation-previous-thumbprint' }, rotation.previousThumbprint)
      : h('span', { id: 'rotation-previous-thumbprint' }, isMove(account, rotation) ? CREDENTIAL_LABEL.federated : '—')),
    h('dt', {}, 'Started'),
    h('dd', {}, timeElement(rotation.startedAt)));
  appendRotationTimes(facts, rotation);
  box.append(h('h3', { id: 'rotation-heading', tabindex: '-1' }, rotationHeading(account, rotation)), facts);
  if (rotation.detail) box.append(h('p', { id: 'rotation-detail', class: 'rotation-detail' }, rotation.detail));
  const actions = rotationActions(account, rotation, kind);
  if (actions.childElementCount) box.append(actions);
}

function appendRotationTimes(facts, rotation) {
  if (rotation.completedAt) {
    facts.append(h('dt', {}, rotation.status === 'completed' ? 'Switched' : 'Ended'), h('dd', {}, timeElement(rotation.completedAt)));
  }
  if (rotation.previousRetiredAt) {
    facts.append(h('dt', {}, 'Previous key retired'), h('dd', { id: 'rotation-retired' }, timeElement(rotation.previousRetiredAt)));
  } else if (rotation.retiresAt) {
    facts.append(h('dt', {}, 'Previous key retires'), h('dd', { id: 'rotation-retires' }, timeElement(rotation.retiresAt)));
  }
  const writes = rotation.appRegistration;
  if (writes) {
    const said = (value) => (value ? GRAPH_WRITE_LABEL[value] || value : 'not needed yet');
    facts.append(h('dt', {}, 'App registration'),
      h('dd', { id: 'rotation-app-registration', 'data-add-key': writes.addKey || '', 'data-remove-key': writes.removeKey || '' },
        `Add the new certificate: ${said(writes.addKey)} · remove the old one: ${said(writes.removeKey)}`));
  }
}

function rotationActions(account, rotation, kind) {
  const actions = h('div', { class: 'button-row' });
  const key = rotation.key || {};
  // The new key exists while the rotation runs and, once switched, as the account's key.
  if (key.keyId && (rotation.status === 'awaiting_upload' || rotation.status === 'completed')) {
    const format = kind === 'federated' ? 'json' : 'cer';
    actions.append(h('a', {
      id: kind === 'federated' ? 'rotation-download-json' : 'rotation-download',
      class: 'button secondary', href: api.keyUrl(key.keyId, format), download: '',
      onclick: (event) => {
        if (!getToken()) return; // a plain <a download> works without a token
        event.preventDefault();
        downloadKeyFile({ keyId: key.keyId, displayName: key.displayName || account.displayName }, format)
          .catch((err) => showError(err, { context: 'Download failed' }));
      },
    }, kind === 'federated' ? 'Download .json' : 'Download new certificate'));
  }
  if (rotation.status === 'awaiting_upload') {
    actions.append(
      h('button', { type: 'button', id: 'rotation-verify', class: 'button secondary',
        onclick: (e) => reverify(account.id, e.currentTarget) }, 'Verify now'),
      h('button', { type: 'button', id: 'rotation-cancel', class: 'button danger',
        onclick: (e) => cancelRenewal(e.currentTarget) },
      isMove(account, rotation) ? 'Cancel the move' : 'Cancel renewal'));
  }
  return actions;
}

/** Renew (kind omitted: the account's current kind) or move the account to the other kind. */
async function startRenewal(button, kind = null) {
  const account = state.renewal?.account;
  if (!account) return;
  const moving = kind && kind !== credentialOf(account);
  const what = moving ? `move of ${account.displayName} to ${kind === 'federated' ? 'a federated credential' : 'a certificate'}`
    : `certificate renewal of ${account.displayName}`;
  await withBusy(button, async () => {
    clearErrors();
    announce(`Starting the ${what}…`);
    let rotation;
    try {
      rotation = await api.startRotation(account.id, moving ? { kind } : {});
    } catch (err) {
      // 409: one is in progress already; the panel shows it as it stands.
      await refreshAll();
      const actions = err.status === 409 && err.problem?.keyId
        ? [{ label: 'Show the renewal in progress', run: () => focusOn($('#rotation-heading')) }] : [];
      showError(err, { context: moving ? 'The move was not started' : 'The renewal was not started', actions });
      return;
    }
    await refreshAll();
    announce(startedMessage(rotation));
    focusOn($('#rotation-heading'));
  });
}

function startedMessage(rotation) {
  if (rotationKind(rotation) === 'federated') {
    const subject = rotation?.key?.federation?.subject;
    return 'Move started. Add the new federated credential to the app registration' +
      (subject ? ` (subject ${subject})` : '') + ', then verify.';
  }
  const thumbprint = rotation?.key?.thumbprint || '';
  return `Renewal started. New certificate ${thumbprint}: ` +
    (rotation?.renewal === 'automatic' ? 'the app adds it to its app registration.' : 'download it and upload it to the app registration.');
}

async function cancelRenewal(button) {
  const account = state.renewal?.account;
  if (!account) return;
  await withBusy(button, async () => {
    clearErrors();
    try {
      await api.cancelRotation(account.id);
    } catch (err) {
      await refreshAll();
      showError(err, { context: 'The renewal was not cancelled' });
      return;
    }
    await refreshAll();
    announce(`${isMove(account, account.rotation) ? 'Move' : 'Renewal'} of ${account.displayName} ` +
      'cancelled; its new key was deleted.');
    focusOn($('#rotation-heading'));
  });
}

/** The Automatic renewal switch: a conditional PATCH of the account as the panel shows it. */
async function setAutomaticRenewal(toggle) {
  const shown = state.renewal;
  if (!shown || state.busy) { renderRenewal(); return; } // nothing sent: show the stored value again
  const wanted = toggle.checked ? 'automatic' : 'manual';
  await withBusy(toggle, async () => {
    clearErrors();
    try {
      const { data, etag } = await api.patchAccount(shown.account.id, { certificateRenewal: wanted }, shown.etag);
      state.renewal = { account: data, etag };
      renderRenewal();
      await loadAccounts();
      announce(`Automatic renewal is ${wanted === 'automatic' ? 'on' : 'off'} for ${data.displayName}.`);
    } catch (err) {
      await refreshAll(); // also reads the account again: the switch shows what is stored
      if (err.status === 412) {
        showError(new ApiError('problem', { status: 412, problem: {
          title: err.problem?.title || 'The account changed',
          detail: 'Automatic renewal was not changed: the account changed since the page showed it. ' +
            'It has been reloaded with its current settings; check them and try again.',
        } }));
      } else {
        renderRenewal();
        showError(err, { context: 'Automatic renewal was not changed' });
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Link form: generate key, download, connect

function formValues() {
  const value = (id) => document.getElementById(id).value.trim();
  return {
    displayName: value('displayName'),
    tenantId: value('tenantId'),
    applicationId: value('applicationId'),
    organizationName: value('organizationName'),
    cloud: document.getElementById('cloud').value || 'auto',
    kind: document.querySelector('input[name="credentialKind"]:checked')?.value || 'certificate',
  };
}

// The Link form's credential choice: the generate button, its hint and the guide's step follow it.
function renderKindChoice() {
  const { kind } = formValues();
  const federated = kind === 'federated';
  $('#generate-key').textContent = federated ? 'Create federated credential' : 'Generate public key & Download';
  $('#generate-hint').textContent = federated
    ? 'Shows the issuer, subject identifier and audience to add to your app registration, and the .json file for the Azure CLI.'
    : 'Downloads the certificate (.cer) to upload to your app registration.';
  $('#displayName-hint').textContent = federated
    ? 'Up to 64 characters. Also names the federated credential.'
    : 'Up to 64 characters. Also names the certificate file.';
  for (const step of document.querySelectorAll('.guide li[data-kind]')) step.hidden = step.dataset.kind !== kind;
  checkKeyMatchesForm();
}

const FORM_TARGETS = {
  displayName: 'displayName', tenantId: 'tenantId', applicationId: 'applicationId',
  organizationName: 'organizationName', cloud: 'cloud', keyId: 'keyId', kind: 'credentialKind',
};

function rememberKey(key) {
  state.key = {
    keyId: key.keyId, tenantId: key.tenantId, applicationId: key.applicationId, displayName: key.displayName,
    thumbprint: key.thumbprint, notAfter: key.notAfter, accountId: key.accountId || null,
    kind: key.kind === 'federated' ? 'federated' : 'certificate', federation: key.federation || null,
  };
  try { sessionStorage.setItem(KEY_STORAGE, JSON.stringify(state.key)); } catch { /* private mode */ }
  renderKey();
}

function forgetKey() {
  state.key = null;
  try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ }
  renderKey();
}

function renderKey() {
  const key = state.key;
  const federated = key?.kind === 'federated';
  $('#key-info').hidden = !key || federated;
  $('#federation-info').hidden = !federated;
  renderSandboxTarget();
  if (!key) return;
  if (federated) {
    renderFederationInfo(key);
  } else {
    $('#thumbprint').textContent = key.thumbprint || '';
    const expiry = $('#key-expiry');
    expiry.textContent = formatDateTime(key.notAfter);
    expiry.setAttribute('datetime', key.notAfter || '');
    $('#download-cer').href = api.keyUrl(key.keyId, 'cer');
    $('#download-pem').href = api.keyUrl(key.keyId, 'pem');
  }
  checkKeyMatchesForm();
}

// What the customer enters under Federated credentials > Add credential > Other issuer, or runs.
function renderFederationInfo(key) {
  const federation = key.federation || {};
  $('#federation-facts').replaceChildren(...federationFacts(federation, 'federation'));
  $('#federation-command').textContent = azCommand(key.applicationId, federation.name);
  $('#download-json').href = api.keyUrl(key.keyId, 'json');
}

function azCommand(applicationId, name) {
  return `az ad app federated-credential create --id ${applicationId} --parameters ${name || 'credential'}.json`;
}

function checkKeyMatchesForm() {
  const key = state.key;
  if (!key) return;
  const { tenantId, applicationId, kind } = formValues();
  const same = (a, b) => String(a || '').toLowerCase() === String(b || '').toLowerCase();
  const sameApp = same(key.tenantId, tenantId) && same(key.applicationId, applicationId);
  const what = key.kind === 'federated' ? 'federated credential' : 'certificate';
  let problem = '';
  if (!sameApp) {
    problem = `This ${what} was made for another tenant or application than the form now shows. ` +
      'Generate a new one before you connect.';
  } else if (kind !== key.kind && !key.accountId) {
    problem = `The form now asks for a ${kind === 'federated' ? 'federated credential' : 'certificate'}, but this is a ${what}. ` +
      `Press “${kind === 'federated' ? 'Create federated credential' : 'Generate public key & Download'}” for one, or connect with this ${what}.`;
  }
  const slot = key.kind === 'federated' ? $('#federation-mismatch') : $('#key-mismatch');
  if (key.kind === 'federated') slot.textContent = problem;
  else if (problem) slot.textContent = problem;
  slot.hidden = !problem;
}

function filenameFrom(disposition) {
  if (!disposition) return '';
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star) { try { return decodeURIComponent(star[1].trim().replace(/^"|"$/g, '')); } catch { /* fall through */ } }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1].trim() : '';
}

const DOWNLOAD_TYPES = {
  cer: 'application/pkix-cert', pem: 'application/x-pem-file', json: 'application/json',
};

/**
 * A real browser download of a key's file: a certificate (cer, pem) or a federated credential's
 * JSON. Without a token an <a download> does it; with one, fetch + blob.
 */
async function downloadKeyFile(key, format = 'cer') {
  const url = api.keyUrl(key.keyId, format);
  if (!getToken()) {
    const link = h('a', { href: url, download: '', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    return;
  }
  const response = await request(url, { raw: true, headers: { Accept: DOWNLOAD_TYPES[format] } });
  const blob = await response.blob();
  const name = filenameFrom(response.headers.get('Content-Disposition')) || `${key.displayName || 'credential'}.${format}`;
  const objectUrl = URL.createObjectURL(blob);
  const link = h('a', { href: objectUrl, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

async function generateKey(button) {
  await withBusy(button, async () => {
    clearErrors();
    const { displayName, tenantId, applicationId, kind } = formValues();
    const federated = kind === 'federated';
    announce(federated ? 'Creating the federated credential…' : 'Generating the key pair and certificate…');
    let key;
    try {
      // A certificate is the default kind: its request stays as it always was.
      key = await api.createKey(federated ? { tenantId, applicationId, displayName, kind } : { tenantId, applicationId, displayName });
    } catch (err) {
      showError(err, { context: `Could not ${federated ? 'create the federated credential' : 'generate the key'}`, fieldTargets: FORM_TARGETS });
      return;
    }
    rememberKey(key);
    if (key.kind === 'federated') {
      announce(`Federated credential ready. Add it to your app registration: subject ${key.federation?.subject || ''}.`);
      focusOn($('#federation-heading'));
      return;
    }
    try {
      await downloadKeyFile(key, 'cer');
    } catch (err) {
      showError(err, { context: 'The key was made, but the download failed; use the download link below' });
      return;
    }
    announce(`Certificate downloaded. Thumbprint ${key.thumbprint}, expires ${formatDate(key.notAfter)}.`);
    focusOn($('#key-heading'));
  });
}

async function connect(button) {
  await withBusy(button, async () => {
    clearErrors();
    if (!state.key) {
      if (formValues().kind === 'federated') {
        showLocalError('Create the federated credential first',
          'Press “Create federated credential” and add it to your app registration before you connect.', 'keyId');
      } else {
        showLocalError('Generate the public key first',
          'Press “Generate public key & Download” and upload the certificate to your app registration before you connect.',
          'keyId');
      }
      return;
    }
    const values = formValues();
    const body = {
      displayName: values.displayName,
      tenantId: values.tenantId,
      applicationId: values.applicationId,
      keyId: state.key.keyId,
      cloud: values.cloud,
    };
    if (values.organizationName) body.organizationName = values.organizationName;

    announce('Linking the account…');
    let account;
    try {
      account = await api.createAccount(body);
    } catch (err) {
      const actions = [];
      const existing = err.status === 409 && err.problem?.accountId;
      if (existing) actions.push({ label: 'Open the existing account', run: () => openAccount(existing) });
      showError(err, { context: 'Could not connect', fieldTargets: FORM_TARGETS, actions });
      return;
    }
    state.key.accountId = account.id;
    rememberKey(state.key);
    await loadAccounts();

    announce('Account linked. Verifying the setup…');
    try {
      const report = await api.verifyAccount(account.id);
      renderReport(report, account);
    } catch (err) {
      showError(err, { context: 'The account is linked, but verification could not run; use Re-verify' });
    }
    await refreshAll();
  });
}

// ---------------------------------------------------------------------------------------------
// Sandbox panel (stand-in for the Entra admin center; only when /sandbox/admin answers)

const sandbox = { tenants: [] };

function sandboxRequest(path, options = {}) {
  return request(`${SANDBOX}${path}`, { auth: false, ...options });
}

function appsOf(tenant) {
  const raw = tenant?.applications ?? tenant?.apps;
  if (Array.isArray(raw)) return raw;
  if (raw && typeof raw === 'object') return Object.values(raw);
  return null;
}

const appIdOf = (app) => app?.appId || app?.applicationId || app?.id || '';
const tenantIdOf = (tenant) => tenant?.tenantId || tenant?.id || '';

async function loadSandbox() {
  let data;
  try {
    data = await sandboxRequest('/tenants');
  } catch {
    $('#sandbox').hidden = true;
    return false;
  }
  const tenants = Array.isArray(data?.value) ? data.value : Array.isArray(data) ? data : [];
  // Applications may not be embedded in the list: read each tenant then.
  sandbox.tenants = await Promise.all(tenants.map(async (tenant) => {
    if (appsOf(tenant) || !tenantIdOf(tenant)) return tenant;
    try {
      const full = await sandboxRequest(`/tenants/${encodeURIComponent(tenantIdOf(tenant))}`);
      return { ...tenant, ...full };
    } catch {
      return tenant;
    }
  }));
  $('#sandbox').hidden = false;
  renderSandbox();
  return true;
}

function listText(value) {
  if (!value) return '';
  if (Array.isArray(value)) {
    return value.map((v) => (typeof v === 'object' && v ? (v.thumbprint || v.displayName || v.name || JSON.stringify(v)) : v)).join(', ');
  }
  return String(value);
}

function renderSandbox() {
  const root = $('#sb-tenants');
  root.replaceChildren();
  if (!sandbox.tenants.length) {
    root.append(h('p', { class: 'muted' }, 'The sandbox has no tenant yet. Create one with POST /admin/tenants.'));
  }
  for (const tenant of sandbox.tenants) {
    const tid = tenantIdOf(tenant);
    const apps = appsOf(tenant);
    const details = [
      tenant.domains?.length ? `Domains: ${listText(tenant.domains)}` : '',
      tenant.cloud ? `Cloud: ${tenant.cloud}` : '',
      tenant.licensed === false ? 'Unlicensed (no Entra ID P2)' : '',
    ].filter(Boolean).join(' · ');
    const item = h('article', { class: 'sb-tenant', 'data-sb-tenant-id': tid },
      h('h4', {}, tenant.displayName || tid),
      h('p', { class: 'mono small' }, `Tenant ID ${tid}`),
      details ? h('p', { class: 'small muted' }, details) : null);
    if (apps === null) {
      item.append(h('p', { class: 'small muted' }, 'Applications are not listed for this tenant.'),
        h('button', { type: 'button', class: 'button secondary small sb-use', onclick: () => useSandboxTarget(tenant, null) },
          'Use this tenant'));
    } else if (!apps.length) {
      item.append(h('p', { class: 'small muted' }, 'No application registered.'),
        h('button', { type: 'button', class: 'button secondary small sb-use', onclick: () => useSandboxTarget(tenant, null) },
          'Use this tenant'));
    } else {
      const list = h('ul', { class: 'sb-apps' });
      for (const app of apps) {
        const appId = appIdOf(app);
        const certs = app.certificates || app.keyCredentials;
        const roles = app.permissions?.roles || app.permissions || app.roles || app.appRoles;
        const dirRoles = app.directoryRoles?.roles || app.directoryRoles;
        const facts = [
          Array.isArray(certs) ? `Certificates: ${certs.length ? listText(certs) : 'none'}` : '',
          Array.isArray(roles) ? `Consented: ${roles.length ? listText(roles) : 'none'}` : '',
          Array.isArray(dirRoles) ? `Roles: ${dirRoles.length ? listText(dirRoles) : 'none'}` : '',
          app.signInAudience ? `Audience: ${app.signInAudience}` : '',
          Array.isArray(app.passwordCredentials) ? `Client secrets: ${app.passwordCredentials.length}` : '',
          app.enabled === false ? 'Disabled' : '',
          app.servicePrincipal === false ? 'No service principal' : '',
          Array.isArray(app.federatedIdentityCredentials) ? `Federated credentials: ${app.federatedIdentityCredentials.length}` : '',
        ].filter(Boolean);
        list.append(h('li', { 'data-sb-app-id': appId },
          h('p', {}, h('strong', {}, app.displayName || appId)),
          h('p', { class: 'mono small' }, `Application ID ${appId}`),
          facts.length ? h('p', { class: 'small muted sb-facts' }, facts.join(' · ')) : null,
          h('button', {
            type: 'button', class: 'button secondary small sb-use',
            'aria-label': `Use this tenant/app: ${app.displayName || appId}`,
            onclick: () => useSandboxTarget(tenant, app),
          }, 'Use this tenant/app'),
          renderSandboxFederated(tenant, app)));
      }
      item.append(list);
    }
    root.append(item);
  }
  renderSandboxTarget();
}

/** An app registration's federated credentials, each with "Change the case of the subject" and "Remove". */
function renderSandboxFederated(tenant, app) {
  const credentials = app.federatedIdentityCredentials;
  if (!Array.isArray(credentials) || !credentials.length) return null;
  const path = `/tenants/${encodeURIComponent(tenantIdOf(tenant))}/applications/${encodeURIComponent(appIdOf(app))}`;
  const here = () => ({ path });
  return h('ul', { class: 'sb-federated', 'aria-label': `Federated credentials of ${app.displayName || appIdOf(app)}` },
    credentials.map((credential) => h('li', { 'data-credential-name': credential.name, 'data-subject': credential.subject },
      h('p', { class: 'small' }, h('strong', {}, credential.name)),
      h('p', { class: 'small mono' }, `Issuer ${credential.issuer}`),
      h('p', { class: 'small mono sb-subject' }, `Subject ${credential.subject}`),
      h('div', { class: 'button-row' },
        h('button', {
          type: 'button', class: 'button secondary small sb-subject-case',
          'aria-label': `Change the case of the subject of ${credential.name}`,
          onclick: (e) => sandboxAction(e.currentTarget, 'Change the case of the subject',
            (target) => sandboxActions.changeSubjectCase(target, credential), here),
        }, 'Change the case of the subject'),
        h('button', {
          type: 'button', class: 'button danger small sb-remove-federated',
          'aria-label': `Remove federated credential ${credential.name}`,
          onclick: (e) => sandboxAction(e.currentTarget, 'Remove federated credential',
            (target) => sandboxActions.removeFederated(target, credential), here),
        }, 'Remove')))));
}

function swapCase(text) {
  return [...text].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
}

function useSandboxTarget(tenant, app) {
  const set = (id, value) => {
    const input = document.getElementById(id);
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  };
  set('tenantId', tenantIdOf(tenant));
  if (app) set('applicationId', appIdOf(app));
  if (!$('#displayName').value.trim()) set('displayName', (app?.displayName || tenant.displayName || '').slice(0, 64));
  if (!$('#organizationName').value.trim() && tenant.domains?.length) set('organizationName', String(tenant.domains[0]));
  announce(`Filled Tenant ID${app ? ' and Application ID' : ''} from the sandbox ${app ? `app ${app.displayName || appIdOf(app)}` : `tenant ${tenant.displayName || ''}`}.`);
}

function renderSandboxTarget() {
  const { tenantId, applicationId } = formValues();
  const target = $('#sb-target');
  if (!tenantId || !applicationId) {
    target.textContent = 'Fill Tenant ID and Application ID in the form (or press “Use this tenant/app” below).';
    return;
  }
  target.replaceChildren('Tenant ', h('code', {}, tenantId), ', application ', h('code', {}, applicationId),
    state.key ? '' : ' (no certificate or federated credential made yet)');
}

function sandboxAppPath() {
  const { tenantId, applicationId } = formValues();
  if (!tenantId || !applicationId) return null;
  return `/tenants/${encodeURIComponent(tenantId)}/applications/${encodeURIComponent(applicationId)}`;
}

// Where a panel action acts: the app of the form, or a missing-target message.
function formTarget() {
  const path = sandboxAppPath();
  if (path) return { path };
  return { missing: ['Choose a sandbox app first', 'Fill Tenant ID and Application ID, or press “Use this tenant/app”.', 'tenantId'] };
}

// The renewal buttons act on the app registration of the account under "Certificate renewal".
function renewalTarget() {
  const account = state.renewal?.account;
  if (!account) {
    return { missing: ['Open an account’s certificate renewal first',
      'Press “Certificate renewal” on a linked account: these buttons act on its app registration.'] };
  }
  return {
    path: `/tenants/${encodeURIComponent(account.tenantId)}/applications/${encodeURIComponent(account.applicationId)}`,
    account,
  };
}

function renderSandboxRenewalTarget() {
  const target = $('#sb-renewal-target');
  const account = state.renewal?.account;
  if (!account) {
    target.textContent = 'Open a linked account’s “Certificate renewal” to act on its app registration.';
    return;
  }
  target.replaceChildren('The app registration of ', h('strong', {}, account.displayName || account.id),
    ' (application ', h('code', {}, account.applicationId), ').');
}

async function sandboxAction(button, label, work, targetOf = formTarget) {
  await withBusy(button, async () => {
    clearErrors();
    const result = $('#sb-result');
    result.textContent = `${label}…`;
    result.dataset.outcome = 'pending';
    const { path, account, missing } = targetOf();
    if (!path) {
      result.textContent = `${label} not done.`;
      result.dataset.outcome = 'error';
      showLocalError(...missing);
      return;
    }
    try {
      const message = await work(path, account);
      result.textContent = message;
      result.dataset.outcome = 'ok';
      announce(message);
    } catch (err) {
      result.textContent = `${label} failed.`;
      result.dataset.outcome = 'error';
      showError(err, { context: `Sandbox: ${label}` });
    }
    await loadSandbox();
  });
}

const sandboxActions = {
  upload: (path) => {
    if (!state.key) {
      throw new ApiError('problem', { problem: { title: 'No certificate yet', detail: 'Press “Generate public key & Download” first.' } });
    }
    if (state.key.kind === 'federated') {
      throw new ApiError('problem', { problem: { title: 'No certificate to upload',
        detail: 'The credential made above is a federated credential: press “Add federated credential” instead.' } });
    }
    return request(api.keyUrl(state.key.keyId, 'pem'), { raw: true, headers: { Accept: 'application/x-pem-file' } })
      .then((response) => response.text())
      .then((pem) => sandboxRequest(`${path}/certificates`, {
        method: 'POST', body: pem, headers: { 'Content-Type': 'application/x-pem-file' },
      }))
      .then((res) => `Certificate uploaded${res?.thumbprint ? ` (thumbprint ${res.thumbprint})` : ''}.`);
  },
  consent: (path) => sandboxRequest(`${path}/permissions`, { method: 'PUT', json: { roles: ['AccessReview.Read.All'] } })
    .then(() => 'Admin consent granted for AccessReview.Read.All.'),
  revoke: (path) => sandboxRequest(`${path}/permissions`, { method: 'PUT', json: { roles: [] } })
    .then(() => 'Admin consent revoked.'),
  role: (path) => sandboxRequest(`${path}/directory-roles`, { method: 'PUT', json: { roles: ['Global Reader'] } })
    .then(() => 'Global Reader role assigned.'),
  unrole: (path) => sandboxRequest(`${path}/directory-roles`, { method: 'PUT', json: { roles: [] } })
    .then(() => 'Directory roles removed.'),
  audience: (path) => {
    const audience = $('#sb-audience').value;
    return sandboxRequest(path, { method: 'PATCH', json: { signInAudience: audience } })
      .then(() => `Supported account types set to ${AUDIENCE_LABEL[audience] || audience}.`);
  },
  addSecret: (path) => sandboxRequest(`${path}/passwords`, { method: 'POST', json: { displayName: 'Left behind' } })
    .then((res) => `Client secret added${res?.hint ? ` (hint ${res.hint}…)` : ''}.`),
  // The renewal's new certificate, fetched as any key's download, uploaded next to the old one.
  uploadNew: async (path, shown) => {
    const account = await api.getAccount(shown.id); // as it is now, not as the panel last saw it
    const rotation = account.rotation;
    if (rotation?.status !== 'awaiting_upload') {
      throw new ApiError('problem', { problem: { title: 'No renewal in progress',
        detail: 'Press “Renew certificate” first: there is no new certificate to upload.' } });
    }
    if (rotationKind(rotation) === 'federated') {
      throw new ApiError('problem', { problem: { title: 'No new certificate',
        detail: 'The move awaits a federated credential, not a certificate: press “Add the new federated credential”.' } });
    }
    const response = await request(api.keyUrl(rotation.key.keyId, 'pem'), { raw: true, headers: { Accept: 'application/x-pem-file' } });
    const res = await sandboxRequest(`${path}/certificates`, {
      method: 'POST', body: await response.text(), headers: { 'Content-Type': 'application/x-pem-file' },
    });
    return `New certificate uploaded (thumbprint ${res?.thumbprint || rotation.key.thumbprint}).`;
  },
  // The credential the rotation replaces: the current one while awaiting (removed first, the
  // order the issue also supports), the previous one once the account switched. A certificate,
  // or the federated credential a move to a certificate replaces.
  removeOld: async (path, shown) => {
    // Read again: removing what became the current credential would break the link.
    const account = await api.getAccount(shown.id);
    const rotation = account.rotation;
    let thumbprint = '';
    let keyId = '';
    if (rotation?.status === 'awaiting_upload') [thumbprint, keyId] = [account.thumbprint, account.keyId];
    else if (rotation?.status === 'completed') [thumbprint, keyId] = [rotation.previousThumbprint, rotation.previousKeyId];
    if (thumbprint) {
      await sandboxRequest(`${path}/certificates/${encodeURIComponent(thumbprint)}`, { method: 'DELETE' });
      return `Old certificate removed (thumbprint ${thumbprint}).`;
    }
    const old = keyId ? await api.getKey(keyId).catch(() => null) : null;
    if (!old?.federation?.name) {
      throw new ApiError('problem', { problem: { title: 'No old certificate',
        detail: 'Only a renewal in progress or completed has an old certificate to remove.' } });
    }
    await sandboxRequest(`${path}/federated-credentials/${encodeURIComponent(old.federation.name)}`, { method: 'DELETE' });
    return `Old federated credential removed (${old.federation.name}).`;
  },
  // As "Add credential > Other issuer" with the downloaded .json file, or with the credential
  // just made above (read as the same download).
  addFederated: async (path) => {
    const input = $('#sb-federated-file');
    const file = input.files?.[0];
    let body;
    if (file) {
      try { body = JSON.parse(await file.text()); } catch {
        throw new ApiError('problem', { problem: { title: 'Not a federated credential file',
          detail: `${file.name} is not JSON: choose the .json file that “Download .json” saved.` } });
      }
    } else if (state.key?.kind === 'federated') {
      body = await request(api.keyUrl(state.key.keyId, 'json'));
    } else {
      throw new ApiError('problem', { problem: { title: 'No federated credential yet',
        detail: 'Choose the downloaded .json file, or choose “Federated credential” and press “Create federated credential” first.' } });
    }
    const added = await sandboxRequest(`${path}/federated-credentials`, { method: 'POST', json: body });
    input.value = '';
    return `Federated credential ${added?.name || body.name} added (subject ${added?.subject || body.subject}).`;
  },
  // The federated credential a move to one is waiting for, added to the account's app registration.
  addNewFederated: async (path, shown) => {
    const account = await api.getAccount(shown.id);
    const rotation = account.rotation;
    if (rotation?.status !== 'awaiting_upload' || rotationKind(rotation) !== 'federated') {
      throw new ApiError('problem', { problem: { title: 'No move to a federated credential in progress',
        detail: 'Press “Move to a federated credential” first: there is no new federated credential to add.' } });
    }
    const body = await request(api.keyUrl(rotation.key.keyId, 'json'));
    const added = await sandboxRequest(`${path}/federated-credentials`, { method: 'POST', json: body });
    return `New federated credential ${added?.name || body.name} added (subject ${added?.subject || body.subject}).`;
  },
  // Entra matches the subject case-sensitively: swapping its case shows the failure a typo makes.
  changeSubjectCase: async (path, credential) => {
    const subject = swapCase(credential.subject);
    await sandboxRequest(`${path}/federated-credentials/${encodeURIComponent(credential.name)}`, {
      method: 'PATCH', json: { subject },
    });
    return `Subject of ${credential.name} is now ${subject}.`;
  },
  removeFederated: async (path, credential) => {
    await sandboxRequest(`${path}/federated-credentials/${encodeURIComponent(credential.name)}`, { method: 'DELETE' });
    return `Federated credential ${credential.name} removed.`;
  },
  removeSecrets: async (path) => {
    const app = await sandboxRequest(path);
    const secrets = Array.isArray(app?.passwordCredentials) ? app.passwordCredentials : [];
    for (const secret of secrets) {
      await sandboxRequest(`${path}/passwords/${encodeURIComponent(secret.keyId)}`, { method: 'DELETE' });
    }
    return secrets.length ? `Client secrets removed (${secrets.length}).` : 'No client secret to remove.';
  },
};

// ---------------------------------------------------------------------------------------------
// Wiring

function bind() {
  $('#link-form').addEventListener('submit', (event) => event.preventDefault());
  $('#generate-key').addEventListener('click', (e) => generateKey(e.currentTarget));
  $('#connect').addEventListener('click', (e) => connect(e.currentTarget));

  $('#choose-microsoft').addEventListener('click', () => {
    announce('Link a new Microsoft Account.');
    focusOn($('#link-heading'));
  });

  for (const id of ['tenantId', 'applicationId']) {
    document.getElementById(id).addEventListener('input', () => { checkKeyMatchesForm(); renderSandboxTarget(); });
  }

  for (const format of ['cer', 'pem']) {
    $(`#download-${format}`).addEventListener('click', async (event) => {
      if (!getToken() || !state.key) return; // plain <a download> works without a token
      event.preventDefault();
      try { await downloadKeyFile(state.key, format); } catch (err) { showError(err, { context: 'Download failed' }); }
    });
  }
  $('#download-json').addEventListener('click', async (event) => {
    if (!getToken() || !state.key) return; // plain <a download> works without a token
    event.preventDefault();
    try { await downloadKeyFile(state.key, 'json'); } catch (err) { showError(err, { context: 'Download failed' }); }
  });
  $('#copy-federation-command').addEventListener('click', () => copyText($('#federation-command').textContent, 'Command'));
  for (const radio of document.querySelectorAll('input[name="credentialKind"]')) {
    radio.addEventListener('change', renderKindChoice);
  }

  $('#copy-thumbprint').addEventListener('click', () => copyText($('#thumbprint').textContent, 'Thumbprint'));

  $('#accounts').addEventListener('click', (event) => {
    const button = event.target.closest('button');
    const row = event.target.closest('[data-account-id]');
    if (!button || !row) return;
    const id = row.dataset.accountId;
    if (button.classList.contains('reverify')) reverify(id, button);
    else if (button.classList.contains('unlink')) unlink(id, button);
    else if (button.classList.contains('show-history')) showHistory(id, button);
    else if (button.classList.contains('show-renewal')) openRenewal(id, button);
    else if (button.classList.contains('show-report')) {
      const account = accountById(id);
      if (account?.lastVerification) renderReport(account.lastVerification, account);
    }
  });

  $('#accounts-more').addEventListener('click', (event) => loadMoreAccounts(event.currentTarget));
  $('#history-more').addEventListener('click', (event) => loadMoreHistory(event.currentTarget));

  const tokenInput = $('#token');
  tokenInput.value = getToken();
  $('#save-token').addEventListener('click', async () => {
    try { sessionStorage.setItem(TOKEN_STORAGE, tokenInput.value.trim()); } catch { /* ignore */ }
    announce(tokenInput.value.trim() ? 'Token saved for this tab.' : 'Token cleared.');
    clearErrors();
    await refreshAll();
  });
  $('#clear-token').addEventListener('click', async () => {
    tokenInput.value = '';
    try { sessionStorage.removeItem(TOKEN_STORAGE); } catch { /* ignore */ }
    announce('Token cleared.');
    await refreshAll();
  });

  $('#api-retry').addEventListener('click', async (e) => {
    await withBusy(e.currentTarget, async () => {
      clearErrors();
      announce('Trying the API again…');
      await refreshAll();
      await loadSandbox();
      if ($('#api-banner').hidden) announce('The API answers.');
      else focusOn($('#api-banner-text'));
    });
  });

  $('#sb-upload').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Upload certificate', sandboxActions.upload));
  $('#sb-consent').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Grant admin consent', sandboxActions.consent));
  $('#sb-revoke').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Revoke consent', sandboxActions.revoke));
  $('#sb-role').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Assign Global Reader', sandboxActions.role));
  $('#sb-unrole').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Remove role', sandboxActions.unrole));
  $('#sb-set-audience').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Set supported account types', sandboxActions.audience));
  $('#sb-add-secret').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Add client secret', sandboxActions.addSecret));
  $('#sb-remove-secrets').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Remove client secrets', sandboxActions.removeSecrets));
  $('#sb-upload-new').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Upload the new certificate',
    sandboxActions.uploadNew, renewalTarget));
  $('#sb-remove-old').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Remove the old certificate',
    sandboxActions.removeOld, renewalTarget));
  $('#sb-add-federated').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Add federated credential',
    sandboxActions.addFederated));
  $('#sb-add-new-federated').addEventListener('click', (e) => sandboxAction(e.currentTarget, 'Add the new federated credential',
    sandboxActions.addNewFederated, renewalTarget));
  $('#renewal-start').addEventListener('click', (e) => startRenewal(e.currentTarget));
  $('#move-federated').addEventListener('click', (e) => startRenewal(e.currentTarget, 'federated'));
  $('#move-certificate').addEventListener('click', (e) => startRenewal(e.currentTarget, 'certificate'));
  $('#renewal-automatic').addEventListener('change', (e) => setAutomaticRenewal(e.currentTarget));
  $('#sb-refresh').addEventListener('click', async () => { await loadSandbox(); announce('Sandbox tenants refreshed.'); });
}

function restoreKey() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY_STORAGE) || 'null');
    if (saved?.keyId) {
      state.key = saved;
      const radio = document.getElementById(saved.kind === 'federated' ? 'kind-federated' : 'kind-certificate');
      radio.checked = true;
      for (const field of ['tenantId', 'applicationId', 'displayName']) {
        const input = document.getElementById(field);
        if (!input.value) input.value = saved[field] || '';
      }
      renderKey();
    }
  } catch { /* ignore */ }
}

async function init() {
  bind();
  restoreKey();
  renderKindChoice();
  renderSandboxTarget();
  renderSandboxRenewalTarget();
  await refreshAll();
  await loadSandbox();
  document.body.dataset.ready = 'true';
}

init();
