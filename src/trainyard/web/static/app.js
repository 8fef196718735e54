// The console's entry point: the router (hash routes, so the static server needs no
// fallback), the navigation bar, the language switch and sign-in/sign-out.
import { PageLife, addMessages, api, apiKey, clearApiKey, findPage, h, setApiKey, setLanguage, language, t, translateStatic, register, showError } from './core.js';
import './pages/datasets.js';
import './pages/jobs.js';
import './pages/models.js';
import './pages/tags.js';
import './pages/digits.js';
import './pages/assistant.js';

addMessages({
  en: {
    'signin.title': 'Sign in', 'signin.key': 'API key', 'signin.submit': 'Sign in',
    'signin.hint': 'The key `make run` printed, or one made with `python -m trainyard keys create`. It is kept in this tab only (session storage).',
    'signin.bad': 'This key was not accepted.',
  },
  fr: {
    'signin.title': 'Connexion', 'signin.key': 'Clé d’API', 'signin.submit': 'Se connecter',
    'signin.hint': 'La clé affichée par `make run`, ou créée avec `python -m trainyard keys create`. Elle n’est gardée que dans cet onglet (session storage).',
    'signin.bad': 'Cette clé n’a pas été acceptée.',
  },
});

register('#/signin', (main) => {
  const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', required: true, size: '48' });
  const status = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { class: 'panel', onsubmit: async (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    try {
      await api('/v1/datasets?limit=1');  // any authenticated read tells whether the key works
      location.hash = sessionStorage.getItem('trainyard.afterSignIn') || '#/jobs';
      sessionStorage.removeItem('trainyard.afterSignIn');
    } catch (error) {
      clearApiKey();
      location.hash = '#/signin';
      showError(status, error.status === 401 ? new Error(t('signin.bad')) : error);
    }
  } },
  h('label', { for: 'api-key' }, t('signin.key')), input,
  h('p', { class: 'hint' }, t('signin.hint')),
  h('button', { type: 'submit' }, t('signin.submit')), status);
  main.append(h('h1', {}, t('signin.title')), form);
  input.focus();
}, { title: 'signin.title', public: true });

let current = null;

async function route() {
  const hash = location.hash || '#/jobs';
  const found = findPage(hash);
  const main = document.getElementById('main');
  current?.end();
  current = new PageLife();
  document.getElementById('sign-out').hidden = !apiKey();
  for (const link of document.querySelectorAll('#main-nav a')) {
    if (hash.startsWith(link.getAttribute('href'))) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.getElementById('main-nav').classList.remove('open');
  document.querySelector('.menu-toggle').setAttribute('aria-expanded', 'false');
  main.replaceChildren();
  if (!found) {
    main.append(h('h1', {}, t('common.notfound')));
    return;
  }
  if (!found.page.isPublic && !apiKey()) {
    sessionStorage.setItem('trainyard.afterSignIn', hash);
    location.hash = '#/signin';
    return;
  }
  document.title = found.page.title ? `${t(found.page.title)} · Trainyard` : 'Trainyard';
  const life = current;
  try {
    await found.page.render(main, found.params, life);
  } catch (error) {
    if (life.alive && error.name !== 'AbortError') showError(main, error);
  }
}

document.getElementById('language').value = language();
document.getElementById('language').addEventListener('change', (event) => {
  setLanguage(event.target.value);
  document.documentElement.lang = event.target.value;
  translateStatic();
  route();
});
document.getElementById('sign-out').addEventListener('click', () => {
  clearApiKey();
  location.hash = '#/signin';
});
document.querySelector('.menu-toggle').addEventListener('click', (event) => {
  const open = document.getElementById('main-nav').classList.toggle('open');
  event.currentTarget.setAttribute('aria-expanded', String(open));
});
document.documentElement.lang = language();
translateStatic();
window.addEventListener('hashchange', route);
route();
