// What every page of the console shares: the API client (with the signed-in key), element
// building, translations, the page registry and the page lifecycle (timers and requests of a
// page stop when the user leaves it).

const KEY_STORAGE = 'trainyard.apiKey';
const LANG_STORAGE = 'trainyard.lang';

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }
export function setApiKey(key) { sessionStorage.setItem(KEY_STORAGE, key); }
export function clearApiKey() { sessionStorage.removeItem(KEY_STORAGE); }

// The message a failed answer carries: the core API's {error, message}, FastAPI's {detail},
// a seed's own form ({prediction}, {message}, <p class="error">), or the status line.
async function errorMessage(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const message = body.message ?? body.detail ?? body.error ?? body.prediction;
    if (message !== undefined) return [typeof message === 'string' ? message : JSON.stringify(message), body];
  } catch (_) { /* not JSON */ }
  const html = new DOMParser().parseFromString(text, 'text/html').body.textContent.trim();
  return [html || `${response.status} ${response.statusText}`, text];
}

// fetch() against the API with the signed-in key. `json` sends a JSON body, `form` a
// FormData; the answer is parsed as JSON unless `as` says 'text', 'blob' or 'response'.
// A 401 signs the user out and goes to the sign-in page.
export async function api(path, { method, json, form, body, headers = {}, as = 'json', signal } = {}) {
  const init = { method: method ?? (json || form || body ? 'POST' : 'GET'), headers: { ...headers }, signal };
  const key = apiKey();
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok && !(as === 'response')) {
    const [message, errorBody] = await errorMessage(response);
    if (response.status === 401 && !path.includes('/v1/health')) {
      clearApiKey();
      location.hash = '#/signin';
    }
    throw new ApiError(response.status, message, errorBody);
  }
  if (as === 'response') return response;
  if (as === 'text') return response.text();
  if (as === 'blob') return response.blob();
  if (response.status === 204) return null;
  return response.json();
}

// h('button', {class: 'x', onclick: fn}, 'text', child...) → an element. Attributes starting
// with "on" become listeners; `false`/`null` attributes and children are left out.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// ---- translations: English, and French where the seeds spoke French ----
const MESSAGES = { en: {}, fr: {} };

// Pages add their own labels: addMessages({en: {...}, fr: {...}}).
export function addMessages(byLanguage) {
  for (const [lang, messages] of Object.entries(byLanguage)) Object.assign(MESSAGES[lang] ??= {}, messages);
}

export function language() { return localStorage.getItem(LANG_STORAGE) || 'en'; }
export function setLanguage(lang) { localStorage.setItem(LANG_STORAGE, lang); }

// t('jobs.title') in the chosen language, else English, else the key; {name} placeholders
// are filled from `values`.
export function t(key, values = {}) {
  const text = MESSAGES[language()]?.[key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

export function translateStatic(root = document) {
  for (const element of root.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
}

// ---- pages ----
const PAGES = [];

// register('#/jobs/:id', render): render(main, params, page) draws the page into `main`.
// `page.signal` aborts when the user leaves; page.every(ms, fn) runs fn until then.
export function register(pattern, render, { title, public: isPublic = false } = {}) {
  const names = [];
  const regex = new RegExp('^' + pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return '([^/]+)'; }) + '$');
  PAGES.push({ pattern, regex, names, render, title, isPublic });
}

export function findPage(hash) {
  for (const page of PAGES) {
    const match = page.regex.exec(hash);
    if (match) {
      const params = Object.fromEntries(page.names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
      return { page, params };
    }
  }
  return null;
}

export class PageLife {
  constructor() {
    this.controller = new AbortController();
    this.timers = [];
  }
  get signal() { return this.controller.signal; }
  get alive() { return !this.controller.signal.aborted; }
  // Run `fn` now and every `ms` while the page is shown; a run never overlaps the previous.
  every(ms, fn) {
    let timer = null;
    const tick = async () => {
      if (!this.alive) return;
      try { await fn(); } catch (error) { if (this.alive && error.name !== 'AbortError') console.warn(error); }
      if (this.alive) { timer = setTimeout(tick, ms); this.timers.push(timer); }
    };
    tick();
  }
  end() {
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
  }
}

// ---- small shared pieces ----
export function alertBox(kind, text) {
  return h('div', { class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

// Show an error (ApiError or any Error) in `container`, replacing what was there.
export function showError(container, error) {
  container.replaceChildren(alertBox('error', error instanceof ApiError ? error.message : String(error.message ?? error)));
}

export function badge(status) {
  return h('span', { class: `badge ${status}` }, t(`status.${status}`));
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  seconds = Math.max(0, Math.round(seconds));
  const m = Math.floor(seconds / 60), s = seconds % 60, hrs = Math.floor(m / 60);
  if (hrs) return `${hrs} h ${m % 60} min`;
  return m ? `${m} min ${s} s` : `${s} s`;
}

export function formatDate(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(language() === 'fr' ? 'fr-FR' : 'en-GB');
}

export function formatNumber(value, digits = 4) {
  return typeof value === 'number' ? Number(value.toFixed(digits)).toString() : '—';
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A drop zone with a file input in it (the keyboard's way in). `onFiles(files)` gets what was
// dropped or chosen (the first file only unless `multiple`); `extra` elements go inside.
export function dropZone({ id, prompt, label, accept = '', multiple = false, onFiles, extra = [] }) {
  const input = h('input', { id, type: 'file', accept, multiple, onchange: () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = '';  // choosing the same file again is a new choice
  } });
  const zone = h('div', { class: 'dropzone' }, h('p', {}, prompt), h('label', { for: id }, label), input, ...extra);
  const over = (event) => { event.preventDefault(); zone.classList.add('dragover'); };
  zone.addEventListener('dragenter', over);
  zone.addEventListener('dragover', over);
  zone.addEventListener('dragleave', () => zone.classList.remove('dragover'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragover');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  });
  return zone;
}

// Top-k labels with a bar each: [{label, score}] → <ul class="score-bars">.
export function scoreBars(items) {
  return h('ul', { class: 'score-bars', 'aria-label': t('common.scores') },
    items.map(({ label, score }) => h('li', {},
      h('span', { class: 'label' }, label),
      h('span', { class: 'bar-track', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '1', 'aria-valuenow': String(score), 'aria-label': label },
        h('span', { class: 'bar', style: `width:${Math.round(score * 100)}%; display:block` })),
      h('span', { class: 'score' }, `${(score * 100).toFixed(1)} %`))));
}

addMessages({
  en: {
    'nav.menu': 'Menu', 'nav.datasets': 'Datasets', 'nav.jobs': 'Jobs', 'nav.models': 'Models', 'nav.tags': 'Tags',
    'nav.digits': 'Digits', 'nav.assistant': 'Assistant', 'nav.signout': 'Sign out', 'nav.language': 'Language',
    'common.scores': 'Scores', 'common.loading': 'Loading…', 'common.none': 'Nothing yet.', 'common.more': 'Load more',
    'common.notfound': 'No such page.',
    'status.PENDING': 'Pending', 'status.DOWNLOADING': 'Downloading data', 'status.DOWNLOADED': 'Data ready',
    'status.RUNNING': 'Running', 'status.EXPORTING': 'Exporting', 'status.SUCCEEDED': 'Succeeded', 'status.FAILED': 'Failed',
    'status.CANCELLED': 'Cancelled', 'status.training': 'Training', 'status.ready': 'Ready', 'status.failed': 'Failed',
  },
  fr: {
    'nav.menu': 'Menu', 'nav.datasets': 'Jeux de données', 'nav.jobs': 'Tâches', 'nav.models': 'Modèles', 'nav.tags': 'Étiquettes',
    'nav.digits': 'Chiffres', 'nav.assistant': 'Assistance', 'nav.signout': 'Se déconnecter', 'nav.language': 'Langue',
    'common.scores': 'Scores', 'common.loading': 'Chargement…', 'common.none': 'Rien pour l’instant.', 'common.more': 'Voir plus',
    'common.notfound': 'Page introuvable.',
    'status.PENDING': 'En attente', 'status.DOWNLOADING': 'Téléchargement', 'status.DOWNLOADED': 'Données prêtes',
    'status.RUNNING': 'En cours', 'status.EXPORTING': 'Export', 'status.SUCCEEDED': 'Réussie', 'status.FAILED': 'Échouée',
    'status.CANCELLED': 'Annulée', 'status.training': 'Entraînement', 'status.ready': 'Prêt', 'status.failed': 'Échoué',
  },
});
