// Custom tags (seed 003, docs/seeds/003.md) through the seed's own routes under /seeds/003:
// add images, mark each one a positive or negative example of a tag, train the tag, and score
// a new image against every trained tag.
//
// The seed has no route that lists images or tags, so this page lists what was added and
// trained during this visit (kept in this module while the tab is open); the images stay on
// the server, and a tag trained before is still scored on new images.
import { addMessages, alertBox, api, badge, dropZone, h, register, scoreBars, showError, sleep, t } from '../core.js';

const SEED = '/seeds/003';
const POLL_MS = 1000;
const TAG_NAME = '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}';  // the seed's name rule (services/tags.py NAME)

const added = [];  // {id, name, url}: the images added during this visit, oldest first
const marks = new Map();  // tag → Map(image id → 'positive' | 'negative')
const trainings = new Map();  // tag → the last /status answer of its training
let currentTag = '';

addMessages({
  en: {
    'tags.title': 'Custom tags',
    'tags.intro': 'Teach Trainyard a tag of your own: add images, mark which ones show it and which do not, train, then score new images.',
    'tags.add': '1. Add images', 'tags.drop': 'Drop images here (several at once), or choose them:', 'tags.images': 'Images', 'tags.imagesAdded': 'Images added',
    'tags.adding': 'Adding image {n} of {total}…', 'tags.added': '{count} image(s) added.',
    'tags.addFailed': '{name}: {message}', 'tags.noImages': 'No images added yet.',
    'tags.mark': '2. Mark them for a tag', 'tags.tag': 'Tag',
    'tags.tagHint': 'Letters, digits, _ . and -, starting with a letter or digit. A new name creates the tag.',
    'tags.badTag': 'A tag is 1–100 letters, digits, _ . or -, starting with a letter or digit.',
    'tags.needTag': 'Name the tag first.', 'tags.positive': 'Positive', 'tags.negative': 'Negative',
    'tags.markAs': 'Mark {name} as {type}', 'tags.counts': 'Tag “{tag}”: {positives} positive, {negatives} negative.',
    'tags.train': '3. Train', 'tags.trainButton': 'Train the tag', 'tags.trainHint': 'At least one positive and one negative example are needed; more make a better tag.',
    'tags.starting': 'Starting the training (the first one also prepares the image features: it may take a minute)…',
    'tags.ongoing': 'Training “{tag}”: {message}', 'tags.trained': 'Tag “{tag}” trained: accuracy {accuracy} on its {count} examples.',
    'tags.trainFailed': 'Training “{tag}” failed: {detail}', 'tags.job': 'Its training job',
    'tags.trainedTags': 'Tags trained in this visit', 'tags.accuracy': 'Accuracy', 'tags.examples': 'Examples', 'tags.status': 'Status',
    'tags.score': '4. Score a new image', 'tags.scoreDrop': 'Drop an image here, or choose one:', 'tags.scoreImage': 'Image to score',
    'tags.scoring': 'Scoring…', 'tags.scored': 'Scores of {name}', 'tags.applies': 'Tags that apply (score ≥ 50 %): {tags}',
    'tags.none': 'none', 'tags.noTrained': 'No tag is trained yet: train one first.', 'tags.yourImage': 'The image scored: {name}',
  },
  fr: {
    'tags.title': 'Étiquettes personnalisées',
    'tags.intro': 'Apprenez à Trainyard une étiquette à vous : ajoutez des images, indiquez celles qui la montrent et celles qui ne la montrent pas, entraînez, puis notez de nouvelles images.',
    'tags.add': '1. Ajouter des images', 'tags.drop': 'Déposez des images ici (plusieurs à la fois), ou choisissez-les :', 'tags.images': 'Images', 'tags.imagesAdded': 'Images ajoutées',
    'tags.adding': 'Ajout de l’image {n} sur {total}…', 'tags.added': '{count} image(s) ajoutée(s).',
    'tags.addFailed': '{name} : {message}', 'tags.noImages': 'Aucune image ajoutée pour l’instant.',
    'tags.mark': '2. Les marquer pour une étiquette', 'tags.tag': 'Étiquette',
    'tags.tagHint': 'Lettres, chiffres, _ . et -, en commençant par une lettre ou un chiffre. Un nouveau nom crée l’étiquette.',
    'tags.badTag': 'Une étiquette compte 1 à 100 lettres, chiffres, _ . ou -, et commence par une lettre ou un chiffre.',
    'tags.needTag': 'Nommez d’abord l’étiquette.', 'tags.positive': 'Positif', 'tags.negative': 'Négatif',
    'tags.markAs': 'Marquer {name} comme {type}', 'tags.counts': 'Étiquette « {tag} » : {positives} positif(s), {negatives} négatif(s).',
    'tags.train': '3. Entraîner', 'tags.trainButton': 'Entraîner l’étiquette', 'tags.trainHint': 'Il faut au moins un exemple positif et un négatif ; davantage donne une meilleure étiquette.',
    'tags.starting': 'Lancement de l’entraînement (le premier prépare aussi les caractéristiques des images : cela peut prendre une minute)…',
    'tags.ongoing': 'Entraînement de « {tag} » : {message}', 'tags.trained': 'Étiquette « {tag} » entraînée : précision {accuracy} sur ses {count} exemples.',
    'tags.trainFailed': 'L’entraînement de « {tag} » a échoué : {detail}', 'tags.job': 'Sa tâche d’entraînement',
    'tags.trainedTags': 'Étiquettes entraînées pendant cette visite', 'tags.accuracy': 'Précision', 'tags.examples': 'Exemples', 'tags.status': 'État',
    'tags.score': '4. Noter une nouvelle image', 'tags.scoreDrop': 'Déposez une image ici, ou choisissez-en une :', 'tags.scoreImage': 'Image à noter',
    'tags.scoring': 'Notation…', 'tags.scored': 'Scores de {name}', 'tags.applies': 'Étiquettes qui s’appliquent (score ≥ 50 %) : {tags}',
    'tags.none': 'aucune', 'tags.noTrained': 'Aucune étiquette n’est entraînée : entraînez-en une d’abord.', 'tags.yourImage': 'L’image notée : {name}',
  },
});

document.head.append(h('style', {}, `
  .tags-page .tag-images { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr)); gap: .75rem; list-style: none; padding: 0; margin: .75rem 0 0; }
  .tags-page .tag-images li { border: 1px solid var(--border); border-radius: 6px; padding: .4rem; background: var(--panel); }
  .tags-page .tag-images li.positive { border: 2px solid var(--ok); }
  .tags-page .tag-images li.negative { border: 2px solid var(--danger); }
  .tags-page .tag-images img { width: 100%; aspect-ratio: 1; object-fit: contain; background: #eee; display: block; }
  .tags-page .tag-images .name { font-size: .8rem; overflow-wrap: anywhere; margin: .25rem 0; }
  .tags-page .tag-images .choices { display: flex; gap: .25rem; }
  .tags-page .tag-images .choices button { flex: 1; padding: .3rem .2rem; font-size: .85rem; }
  .tags-page button[aria-pressed="false"] { background: var(--panel); color: var(--accent); }
  .tags-page .scored { display: grid; grid-template-columns: minmax(0, 12rem) minmax(0, 1fr); gap: 1rem; align-items: start; }
  .tags-page .scored img { width: 100%; image-rendering: pixelated; border: 1px solid var(--border); }
  .tags-page .row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
  @media (max-width: 700px) { .tags-page .scored { grid-template-columns: 1fr; } }
`));

function percent(value) {
  return `${(value * 100).toFixed(1)} %`;
}

function multipart(file) {
  const form = new FormData();
  form.append('data', file, file.name);
  return form;
}

// Dropped files that are not pictures are left out (the file input only offers pictures).
function pictures(onFiles) {
  return (files) => {
    const images = files.filter((file) => file.type.startsWith('image/'));
    if (images.length) onFiles(images);
  };
}

register('#/tags', (main, _params, life) => {
  const tagInput = h('input', { id: 'tag-name', name: 'tag', value: currentTag, pattern: TAG_NAME, maxlength: '100',
    autocomplete: 'off', 'aria-describedby': 'tag-hint' });
  const addStatus = h('div', { 'aria-live': 'polite' });
  const markStatus = h('div', { 'aria-live': 'polite' });
  const trainStatus = h('div', { 'aria-live': 'polite' });
  const scoreStatus = h('div', { 'aria-live': 'polite' });
  const gallery = h('ul', { class: 'tag-images', 'aria-label': t('tags.imagesAdded') });
  const trainedBody = h('tbody');
  const trainedTable = h('div', { class: 'table-wrap', hidden: true },
    h('table', {}, h('caption', { class: 'visually-hidden' }, t('tags.trainedTags')),
      h('thead', {}, h('tr', {}, ['tags.tag', 'tags.status', 'tags.accuracy', 'tags.examples'].map((key) => h('th', { scope: 'col' }, t(key))))),
      trainedBody));
  const trainButton = h('button', { type: 'button', onclick: () => train() }, t('tags.trainButton'));

  const tagMarks = () => marks.get(currentTag) ?? new Map();

  function validTag() {
    if (!currentTag) { markStatus.replaceChildren(alertBox('error', t('tags.needTag'))); return false; }
    if (!new RegExp(`^${TAG_NAME}$`).test(currentTag)) { markStatus.replaceChildren(alertBox('error', t('tags.badTag'))); return false; }
    return true;
  }

  function drawGallery() {
    const chosen = tagMarks();
    gallery.replaceChildren(...added.map((image) => {
      const type = chosen.get(image.id);
      const choice = (kind) => h('button', {
        type: 'button', 'aria-pressed': String(type === kind),
        'aria-label': t('tags.markAs', { name: image.name, type: t(`tags.${kind}`) }),
        onclick: () => assign(image, kind),
      }, t(`tags.${kind}`));
      return h('li', { class: type ?? '' },
        h('img', { src: image.url, alt: image.name }),
        h('p', { class: 'name' }, image.name),
        h('div', { class: 'choices' }, choice('positive'), choice('negative')));
    }));
    if (!added.length) gallery.append(h('li', {}, t('tags.noImages')));
  }

  function drawCounts() {
    markStatus.replaceChildren();
    if (!currentTag || !validTag()) return;
    const values = [...tagMarks().values()];
    markStatus.replaceChildren(alertBox('info', t('tags.counts', {
      tag: currentTag,
      positives: values.filter((v) => v === 'positive').length,
      negatives: values.filter((v) => v === 'negative').length,
    })));
  }

  function drawTrained() {
    trainedTable.hidden = !trainings.size;
    trainedBody.replaceChildren(...[...trainings].map(([tag, answer]) => h('tr', {},
      h('th', { scope: 'row' }, tag),
      h('td', {}, badge(answer.status === 'ok' ? 'ready' : answer.status === 'error' ? 'failed' : 'training')),
      h('td', {}, answer.status === 'ok' ? percent(answer.accuracy) : '—'),
      h('td', {}, answer.status === 'ok' ? `${answer.positives} + / ${answer.negatives} −` : '—'))));
  }

  async function addFiles(files) {
    const progress = h('progress', { class: 'progress', max: String(files.length), value: '0' });
    const line = h('p', {});
    const failures = h('ul', {});
    addStatus.replaceChildren(line, progress, failures);
    let count = 0;
    for (const [index, file] of files.entries()) {
      if (!life.alive) return;
      line.textContent = t('tags.adding', { n: index + 1, total: files.length });
      try {
        const answer = await api(`${SEED}/custom/add`, { form: multipart(file), signal: life.signal });
        added.push({ id: answer.image_id, name: file.name, url: URL.createObjectURL(file) });
        count += 1;
        drawGallery();
      } catch (error) {
        if (error.name === 'AbortError') return;
        failures.append(h('li', { class: 'alert error' }, t('tags.addFailed', { name: file.name, message: error.message })));
      }
      progress.value = index + 1;
    }
    line.textContent = t('tags.added', { count });
    progress.remove();
  }

  async function assign(image, type) {
    currentTag = tagInput.value.trim();
    if (!validTag()) { tagInput.focus(); return; }
    const path = `${SEED}/custom/assign/${encodeURIComponent(image.id)}/${type}/${encodeURIComponent(currentTag)}`;
    try {
      await api(path, { signal: life.signal });
    } catch (error) {
      if (error.name !== 'AbortError') showError(markStatus, error);
      return;
    }
    if (!marks.has(currentTag)) marks.set(currentTag, new Map());
    marks.get(currentTag).set(image.id, type);
    drawGallery();
    drawCounts();
  }

  async function train() {
    currentTag = tagInput.value.trim();
    if (!validTag()) { tagInput.focus(); return; }
    const tag = currentTag;
    trainButton.disabled = true;
    const line = h('p', {}, t('tags.starting'));
    trainStatus.replaceChildren(line, h('progress', { class: 'progress', 'aria-label': t('tags.train') }));
    try {
      const { task_id: taskId } = await api(`${SEED}/custom/train/${encodeURIComponent(tag)}`, { signal: life.signal });
      for (;;) {
        const answer = await api(`${SEED}/status/${encodeURIComponent(taskId)}`, { signal: life.signal });
        trainings.set(tag, answer);
        drawTrained();
        if (answer.status === 'ok') {
          trainStatus.replaceChildren(alertBox('success', t('tags.trained', {
            tag, accuracy: percent(answer.accuracy), count: answer.positives + answer.negatives,
          })), h('p', {}, h('a', { href: `#/jobs/${encodeURIComponent(answer.job_id)}` }, t('tags.job'))));
          return;
        }
        if (answer.status === 'error') {
          trainStatus.replaceChildren(alertBox('error', t('tags.trainFailed', { tag, detail: answer.detail ?? answer.message })));
          return;
        }
        line.textContent = t('tags.ongoing', { tag, message: answer.message });
        await sleep(POLL_MS);
        if (!life.alive) return;
      }
    } catch (error) {
      if (error.name !== 'AbortError') showError(trainStatus, error);
    } finally {
      trainButton.disabled = false;
    }
  }

  async function score([file]) {
    scoreStatus.replaceChildren(h('p', {}, t('tags.scoring')), h('progress', { class: 'progress', 'aria-label': t('tags.scoring') }));
    try {
      const answer = await api(`${SEED}/predict/custom`, { form: multipart(file), signal: life.signal });
      const scores = Object.entries(answer.custom).map(([label, value]) => ({ label, score: value }))
        .sort((a, b) => b.score - a.score);
      if (!scores.length) { scoreStatus.replaceChildren(alertBox('info', t('tags.noTrained'))); return; }
      const applying = scores.filter((s) => s.score >= 0.5).map((s) => s.label);
      scoreStatus.replaceChildren(h('div', { class: 'scored' },
        h('img', { src: URL.createObjectURL(file), alt: t('tags.yourImage', { name: file.name }) }),
        h('div', {}, h('h3', {}, t('tags.scored', { name: file.name })), scoreBars(scores),
          h('p', {}, t('tags.applies', { tags: applying.length ? applying.join(', ') : t('tags.none') })))));
    } catch (error) {
      if (error.name !== 'AbortError') showError(scoreStatus, error);
    }
  }

  tagInput.addEventListener('input', () => {
    currentTag = tagInput.value.trim();
    drawGallery();
    drawCounts();
  });

  const section = (id, titleKey, ...content) => h('section', { class: 'panel', 'aria-labelledby': id },
    h('h2', { id }, t(titleKey)), ...content);
  main.append(h('div', { class: 'tags-page' },
    h('h1', {}, t('tags.title')),
    h('p', { class: 'hint' }, t('tags.intro')),
    section('tags-add', 'tags.add', dropZone({
      id: 'tag-images', prompt: t('tags.drop'), label: t('tags.images'), accept: 'image/*', multiple: true,
      onFiles: pictures(addFiles),
    }), addStatus),
    section('tags-mark', 'tags.mark',
      h('div', { class: 'field' }, h('label', { for: 'tag-name' }, t('tags.tag')), tagInput,
        h('p', { class: 'hint', id: 'tag-hint' }, t('tags.tagHint'))),
      markStatus, gallery),
    section('tags-train', 'tags.train', h('p', { class: 'hint' }, t('tags.trainHint')),
      h('div', { class: 'row' }, trainButton), trainStatus, trainedTable),
    section('tags-score', 'tags.score', dropZone({
      id: 'score-image', prompt: t('tags.scoreDrop'), label: t('tags.scoreImage'), accept: 'image/*', onFiles: pictures(score),
    }), scoreStatus)));
  drawGallery();
  drawCounts();
  drawTrained();
}, { title: 'tags.title' });
