// The Datasets pages. #/datasets: the upload form (a drop zone with a file input beside it, one
// real progress bar per upload, large files through the upload flow, refusals shown under the
// file they are about) and the list (pages of the API's cursor, delete after a confirmation).
// #/datasets/:id: the facts (task, classes, counts per class and split) and the pictures, a page
// at a time, filtered by class: detection boxes and pose skeletons are drawn over them.
import {
  ApiError, addMessages, alertBox, api, apiKey, clearApiKey, dropZone, formatDate, h, register, showError, t,
} from '../core.js';
import { annotatedCanvas, loadImage } from '../draw.js';

// Files above this size go through the upload flow (POST /v1/uploads, the bytes to the URL it
// answers, then POST /v1/datasets {upload_id}): on AWS, API Gateway and Lambda take bodies of a
// few MB only; the local stack's inline limit is larger. Below both, so one page suits either.
export const INLINE_LIMIT_BYTES = 4 * 1024 * 1024;
const LIST_PAGE = 20;
const PICTURES_PAGE = 24;
const TASKS = ['classification', 'detection', 'pose'];

addMessages({
  en: {
    'datasets.title': 'Datasets', 'datasets.upload': 'Upload a dataset', 'datasets.name': 'Name',
    'datasets.nameHint': 'Left empty, the file’s name is used.', 'datasets.task': 'Task',
    'task.classification': 'Classification', 'task.detection': 'Detection', 'task.pose': 'Pose',
    'datasets.hint.classification': 'A .zip or .tar.gz of class folders (<class>/<image>), or of train/ and val/ folders holding them.',
    'datasets.hint.detection': 'A .zip, .tar.gz, .tar or .7z of images with COCO JSON or YOLO txt labels.',
    'datasets.hint.pose': 'A .pkg.slp; or a .slp with its videos (choose them together); or a .zip, .7z or .tar.gz holding them.',
    'datasets.drop': 'Drop files here', 'datasets.choose': 'or choose files',
    'datasets.large': 'Files over {size} go through the upload flow (POST /v1/uploads).',
    'datasets.submit': 'Upload', 'datasets.noFiles': 'Choose or drop at least one file.',
    'datasets.progressOf': 'Upload of {name}', 'datasets.checking': 'Sent; checking the dataset…',
    'datasets.waiting': 'Waiting', 'datasets.viaUploads': 'through the upload flow',
    'datasets.created': 'Created {name}.', 'datasets.open': 'Open {name}', 'datasets.network': 'The connection failed.',
    'datasets.list': 'Your datasets', 'datasets.none': 'No datasets yet: upload one above.',
    'datasets.col.name': 'Name', 'datasets.col.task': 'Task', 'datasets.col.classes': 'Classes', 'datasets.col.pictures': 'Pictures',
    'datasets.col.created': 'Created', 'datasets.col.actions': 'Actions',
    'datasets.delete': 'Delete', 'datasets.deleteNamed': 'Delete {name}', 'datasets.confirm': 'Delete {name} for good?',
    'datasets.yes': 'Yes, delete', 'datasets.cancel': 'Cancel', 'datasets.deleted': 'Deleted {name}.',
    'datasets.back': 'All datasets', 'datasets.facts': 'Facts', 'datasets.id': 'Id', 'datasets.classes': 'Classes',
    'datasets.nodes': 'Nodes', 'datasets.images': 'Images', 'datasets.frames': 'Labelled frames', 'datasets.instances': 'Instances',
    'datasets.format': 'Format', 'datasets.boxes': 'Boxes', 'datasets.perClass': 'Per class and split', 'datasets.class': 'Class',
    'datasets.total': 'Total', 'datasets.unsplit': 'no split', 'datasets.unassigned': 'no split', 'datasets.perSplit': 'Images per split',
    'datasets.boxesPerClass': 'Boxes per class', 'datasets.skeleton': 'Skeleton {name}', 'datasets.edges': 'Edges',
    'datasets.videos': 'Videos', 'datasets.video': 'Video', 'datasets.frameCount': 'Frames', 'datasets.size': 'Size', 'datasets.fps': 'Frame rate',
    'datasets.embedded': 'embedded in the labels file',
    'datasets.pictures': 'Pictures', 'datasets.samples': 'Sample frames', 'datasets.filter': 'Show', 'datasets.allClasses': 'All classes',
    'datasets.noPictures': 'No pictures here.',
    'datasets.noSamples': 'This dataset was made before sample frames were kept, so there are none to show; upload it again to see its skeleton drawn on frames.',
    'datasets.pictureAlt': '{label}, {split} image {id}', 'datasets.boxesAlt': 'Image {source} with {count} box(es): {labels}',
    'datasets.frameAlt': 'Frame {frame} of {video} with {count} instance(s), keypoints joined by the skeleton',
    'datasets.frameCaption': '{video}, frame {frame}', 'datasets.showing': 'Showing {count} picture(s).',
  },
  fr: {
    'datasets.title': 'Jeux de données', 'datasets.upload': 'Envoyer un jeu de données', 'datasets.name': 'Nom',
    'datasets.nameHint': 'Laissé vide, le nom du fichier est pris.', 'datasets.task': 'Tâche',
    'task.classification': 'Classification', 'task.detection': 'Détection', 'task.pose': 'Pose',
    'datasets.hint.classification': 'Un .zip ou .tar.gz de dossiers par classe (<classe>/<image>), ou de dossiers train/ et val/ qui les contiennent.',
    'datasets.hint.detection': 'Un .zip, .tar.gz, .tar ou .7z d’images avec leurs étiquettes COCO JSON ou YOLO txt.',
    'datasets.hint.pose': 'Un .pkg.slp ; ou un .slp avec ses vidéos (choisis ensemble) ; ou un .zip, .7z ou .tar.gz qui les contient.',
    'datasets.drop': 'Déposez les fichiers ici', 'datasets.choose': 'ou choisissez des fichiers',
    'datasets.large': 'Les fichiers de plus de {size} passent par l’envoi en deux temps (POST /v1/uploads).',
    'datasets.submit': 'Envoyer', 'datasets.noFiles': 'Choisissez ou déposez au moins un fichier.',
    'datasets.progressOf': 'Envoi de {name}', 'datasets.checking': 'Envoyé ; vérification du jeu de données…',
    'datasets.waiting': 'En attente', 'datasets.viaUploads': 'par l’envoi en deux temps',
    'datasets.created': '{name} est créé.', 'datasets.open': 'Ouvrir {name}', 'datasets.network': 'La connexion a échoué.',
    'datasets.list': 'Vos jeux de données', 'datasets.none': 'Aucun jeu de données : envoyez-en un ci-dessus.',
    'datasets.col.name': 'Nom', 'datasets.col.task': 'Tâche', 'datasets.col.classes': 'Classes', 'datasets.col.pictures': 'Images',
    'datasets.col.created': 'Créé le', 'datasets.col.actions': 'Actions',
    'datasets.delete': 'Supprimer', 'datasets.deleteNamed': 'Supprimer {name}', 'datasets.confirm': 'Supprimer {name} définitivement ?',
    'datasets.yes': 'Oui, supprimer', 'datasets.cancel': 'Annuler', 'datasets.deleted': '{name} est supprimé.',
    'datasets.back': 'Tous les jeux de données', 'datasets.facts': 'En bref', 'datasets.id': 'Identifiant', 'datasets.classes': 'Classes',
    'datasets.nodes': 'Points', 'datasets.images': 'Images', 'datasets.frames': 'Images annotées', 'datasets.instances': 'Individus',
    'datasets.format': 'Format', 'datasets.boxes': 'Boîtes', 'datasets.perClass': 'Par classe et partie', 'datasets.class': 'Classe',
    'datasets.total': 'Total', 'datasets.unsplit': 'sans partie', 'datasets.unassigned': 'sans partie', 'datasets.perSplit': 'Images par partie',
    'datasets.boxesPerClass': 'Boîtes par classe', 'datasets.skeleton': 'Squelette {name}', 'datasets.edges': 'Liaisons',
    'datasets.videos': 'Vidéos', 'datasets.video': 'Vidéo', 'datasets.frameCount': 'Images', 'datasets.size': 'Taille', 'datasets.fps': 'Cadence',
    'datasets.embedded': 'incluse dans le fichier d’annotations',
    'datasets.pictures': 'Images', 'datasets.samples': 'Images d’exemple', 'datasets.filter': 'Afficher', 'datasets.allClasses': 'Toutes les classes',
    'datasets.noPictures': 'Aucune image ici.',
    'datasets.noSamples': 'Ce jeu de données date d’avant la conservation des images d’exemple : il n’y en a aucune à montrer ; envoyez-le de nouveau pour voir son squelette sur des images.',
    'datasets.pictureAlt': '{label}, image {split} {id}', 'datasets.boxesAlt': 'Image {source} avec {count} boîte(s) : {labels}',
    'datasets.frameAlt': 'Image {frame} de {video} avec {count} individu(s), points reliés par le squelette',
    'datasets.frameCaption': '{video}, image {frame}', 'datasets.showing': '{count} image(s) affichée(s).',
  },
});

// Page-specific layout; the shared pieces (.panel, .dropzone, .alert, dl.facts) are in app.css.
document.head.append(h('style', { id: 'datasets-page-style' }, `
.upload-list { list-style: none; padding: 0; margin: .75rem 0 0; }
.upload-item { display: grid; grid-template-columns: minmax(0, 1fr) minmax(6rem, 12rem) minmax(5rem, auto); gap: .25rem .75rem;
  align-items: center; padding: .5rem 0; border-top: 1px solid var(--border); }
.upload-item .file-name { overflow-wrap: anywhere; }
.upload-item .alert { grid-column: 1 / -1; margin: 0; }
.dropzone input[type=file] { margin: .5rem auto 0; }
.pictures { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: .75rem; list-style: none; padding: 0; }
.pictures.annotated { grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); }
.pictures figure { margin: 0; }
.pictures img, .pictures canvas { display: block; width: 100%; height: auto; background: #e9ecef; border: 1px solid var(--border); }
.pictures img { image-rendering: pixelated; }
.pictures figcaption { font-size: .85rem; color: var(--muted); overflow-wrap: anywhere; }
.confirm { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
.panel > h2:first-child { margin-top: 0; }
@media (max-width: 700px) {
  .upload-item { grid-template-columns: 1fr; }
  /* each dataset as a card: the facts stacked, the actions beside them */
  .datasets-table thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .datasets-table tr { display: grid; grid-template-columns: minmax(0, 1fr) auto; padding: .4rem 0; border-bottom: 1px solid var(--border); }
  .datasets-table td { border: 0; padding: .1rem .5rem; }
  .datasets-table td:last-child { grid-column: 2; grid-row: 1 / span 5; align-self: center; }
}
`));

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function stem(filename) {
  return filename.replace(/\.(pkg\.slp|tar\.gz|tgz|[^.]+)$/i, '');
}

// ---- sending bytes with a progress bar ----

// fetch() reports no upload progress; XMLHttpRequest does. The key goes only to this API (a
// presigned S3 POST must carry nothing but its own fields). Answers like api(): the JSON body,
// or an ApiError with the service's message.
function send({ method, url, body, headers = {}, onProgress, onSent, signal }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    if (new URL(url, location.href).origin === location.origin && apiKey()) {
      xhr.setRequestHeader('Authorization', `Bearer ${apiKey()}`);
    }
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.upload.onload = () => { onProgress(1); onSent?.(); };
    xhr.onload = () => {
      let answer = null;
      try { answer = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (_) { answer = xhr.responseText; }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(answer); return; }
      if (xhr.status === 401) { clearApiKey(); location.hash = '#/signin'; }
      const message = answer?.message ?? answer?.detail ?? `${xhr.status} ${xhr.statusText}`;
      reject(new ApiError(xhr.status, typeof message === 'string' ? message : JSON.stringify(message), answer));
    };
    xhr.onerror = () => reject(new Error(t('datasets.network')));
    xhr.onabort = () => reject(new DOMException('left the page', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort());
    xhr.send(body);
  });
}

// One dataset's upload: its files (one archive, or a pose .slp with its videos) with a row of
// its own holding the progress bar, the status and, on refusal, the message naming the file.
class UploadRow {
  constructor(files) {
    this.files = files;
    const title = files.map((file) => `${file.name} (${formatBytes(file.size)})`).join(', ');
    const label = t('datasets.progressOf', { name: files.map((file) => file.name).join(', ') });
    this.bar = h('progress', { max: '100', value: '0', 'aria-label': label });
    this.status = h('span', { class: 'upload-status', 'aria-live': 'polite' }, t('datasets.waiting'));
    this.element = h('li', { class: 'upload-item' }, h('span', { class: 'file-name' }, title), this.bar, this.status);
  }
  progress(fraction) {
    const percent = Math.round(fraction * 100);
    this.bar.value = percent;
    this.bar.setAttribute('value', String(percent));
    this.status.textContent = `${percent} %`;
  }
  say(text) { this.status.textContent = text; }
  fail(error) {
    this.say('');
    const names = this.files.map((file) => file.name).join(', ');
    this.element.append(alertBox('error', `${names}: ${error instanceof ApiError ? error.message : error.message ?? error}`));
  }
  done(dataset) {
    this.say(t('datasets.created', { name: dataset.name }));
    this.element.append(h('a', { href: `#/datasets/${encodeURIComponent(dataset.id)}` }, t('datasets.open', { name: dataset.name })));
  }
}

async function uploadDataset(row, name, task, signal) {
  const size = row.files.reduce((sum, file) => sum + file.size, 0);
  const checking = () => row.say(t('datasets.checking'));
  if (row.files.length === 1 && size > INLINE_LIMIT_BYTES) {
    const [file] = row.files;
    const target = await api('/v1/uploads', { json: { filename: file.name, size_bytes: file.size, purpose: 'dataset' }, signal });
    row.say(t('datasets.viaUploads'));
    let body = file;
    if (target.method === 'POST') {  // a presigned POST: its fields first, the file last
      body = new FormData();
      for (const [field, value] of Object.entries(target.fields)) body.append(field, value);
      body.append('file', file);
    }
    const headers = target.method === 'PUT' ? { 'Content-Type': 'application/octet-stream' } : {};
    await send({ method: target.method, url: target.url, body, headers, onProgress: (f) => row.progress(f), onSent: checking, signal });
    checking();
    return api('/v1/datasets', { json: { name, upload_id: target.upload_id, task }, signal });
  }
  const form = new FormData();
  form.append('name', name);
  form.append('task', task);
  for (const file of row.files) form.append('file', file, file.name);
  return send({ method: 'POST', url: '/v1/datasets', body: form, onProgress: (f) => row.progress(f), onSent: checking, signal });
}

function uploadForm(life, onCreated) {
  let chosen = [];
  const nameInput = h('input', { id: 'dataset-name', name: 'name', maxlength: '200', 'aria-describedby': 'dataset-name-hint' });
  const taskSelect = h('select', { id: 'dataset-task', name: 'task', 'aria-describedby': 'dataset-task-hint' },
    TASKS.map((task) => h('option', { value: task }, t(`task.${task}`))));
  const taskHint = h('p', { class: 'hint', id: 'dataset-task-hint' }, t('datasets.hint.classification'));
  taskSelect.addEventListener('change', () => { taskHint.textContent = t(`datasets.hint.${taskSelect.value}`); });
  const selected = h('p', { class: 'hint', 'aria-live': 'polite' });
  const rows = h('ul', { class: 'upload-list', 'aria-label': t('datasets.upload') });
  const formStatus = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, t('datasets.submit'));

  const choose = (files) => {
    chosen = [...files];
    selected.textContent = chosen.map((file) => `${file.name} (${formatBytes(file.size)})`).join(', ');
  };
  const zone = dropZone({ id: 'dataset-files', prompt: t('datasets.drop'), label: t('datasets.choose'),
    accept: '.zip,.tar,.gz,.tgz,.7z,.slp,.mp4,.avi,.mov,.mkv,.h5', multiple: true, onFiles: choose, extra: [selected] });

  const form = h('form', { class: 'panel', 'aria-labelledby': 'upload-title', onsubmit: async (event) => {
    event.preventDefault();
    formStatus.replaceChildren();
    if (!chosen.length) { formStatus.append(alertBox('error', t('datasets.noFiles'))); return; }
    const task = taskSelect.value;
    // A pose dataset is a .slp with its videos, sent together; any other file is a dataset.
    const groups = task === 'pose' ? [chosen] : chosen.map((file) => [file]);
    const typed = nameInput.value.trim();
    submit.disabled = true;
    rows.replaceChildren();
    const uploads = groups.map((files) => new UploadRow(files));
    rows.append(...uploads.map((row) => row.element));
    const created = [];
    for (const row of uploads) {
      const own = stem(row.files[0].name);
      const name = groups.length === 1 ? (typed || own) : (typed ? `${typed} (${own})` : own);
      try {
        const dataset = await uploadDataset(row, name, task, life.signal);
        row.done(dataset);
        created.push(dataset);
      } catch (error) {
        if (!life.alive) return;
        row.fail(error);
      }
    }
    submit.disabled = false;
    chosen = [];
    selected.textContent = '';
    if (created.length === 1 && uploads.length === 1) location.hash = `#/datasets/${encodeURIComponent(created[0].id)}`;
    else if (created.length) onCreated();
  } },
  h('h2', { id: 'upload-title' }, t('datasets.upload')),
  h('div', { class: 'grid' },
    h('div', { class: 'field' }, h('label', { for: 'dataset-name' }, t('datasets.name')), nameInput,
      h('p', { class: 'hint', id: 'dataset-name-hint' }, t('datasets.nameHint'))),
    h('div', { class: 'field' }, h('label', { for: 'dataset-task' }, t('datasets.task')), taskSelect, taskHint)),
  zone,
  h('p', { class: 'hint' }, t('datasets.large', { size: formatBytes(INLINE_LIMIT_BYTES) })),
  submit, formStatus, rows);
  return form;
}

// ---- the list ----

function picturesCount(dataset) {
  return dataset.task === 'pose' ? `${dataset.image_count} ${t('datasets.frames').toLowerCase()}` : String(dataset.image_count);
}

function classesSummary(classes) {
  const shown = classes.slice(0, 5).join(', ');
  return classes.length > 5 ? `${shown} +${classes.length - 5}` : shown;
}

function datasetRow(dataset, area) {
  const actions = h('td', {});
  const row = h('tr', {},
    h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(dataset.id)}` }, dataset.name)),
    h('td', {}, t(`task.${dataset.task}`)),
    h('td', {}, classesSummary(dataset.classes)),
    h('td', {}, picturesCount(dataset)),
    h('td', {}, formatDate(dataset.created_at)),
    actions);
  const askFirst = () => {
    const deleteButton = h('button', { type: 'button', class: 'danger', 'aria-label': t('datasets.deleteNamed', { name: dataset.name }) }, t('datasets.delete'));
    deleteButton.addEventListener('click', () => {
      const yes = h('button', { type: 'button', class: 'danger' }, t('datasets.yes'));
      const no = h('button', { type: 'button', class: 'secondary' }, t('datasets.cancel'));
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        try {
          await api(`/v1/datasets/${encodeURIComponent(dataset.id)}`, { method: 'DELETE' });
          row.remove();
          area.replaceChildren(alertBox('success', t('datasets.deleted', { name: dataset.name })));
        } catch (error) {
          yes.disabled = false;
          showError(area, error);
        }
      });
      no.addEventListener('click', () => { askFirst(); actions.querySelector('button').focus(); });
      actions.replaceChildren(h('div', { class: 'confirm', role: 'group', 'aria-label': t('datasets.confirm', { name: dataset.name }) },
        h('span', {}, t('datasets.confirm', { name: dataset.name })), yes, no));
      no.focus();
    });
    actions.replaceChildren(deleteButton);
  };
  askFirst();
  return row;
}

async function renderList(main, _params, life) {
  const area = h('div', { 'aria-live': 'polite' });
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'datasets-table' },
    h('caption', { class: 'visually-hidden' }, t('datasets.list')),
    h('thead', {}, h('tr', {}, ['name', 'task', 'classes', 'pictures', 'created', 'actions'].map((c) => h('th', { scope: 'col' }, t(`datasets.col.${c}`))))),
    body));
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('common.more'));
  const empty = h('p', { class: 'hint', hidden: true }, t('datasets.none'));
  let cursor = null;
  const load = async (reset) => {
    if (reset) { cursor = null; body.replaceChildren(); }
    const query = new URLSearchParams({ limit: String(LIST_PAGE) });
    if (cursor) query.set('cursor', cursor);
    const page = await api(`/v1/datasets?${query}`, { signal: life.signal });
    body.append(...page.items.map((dataset) => datasetRow(dataset, area)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
    table.hidden = body.children.length === 0;
  };
  more.addEventListener('click', () => load(false).catch((error) => life.alive && showError(area, error)));
  main.append(
    h('h1', {}, t('datasets.title')),
    uploadForm(life, () => load(true).catch((error) => life.alive && showError(area, error))),
    h('section', { 'aria-labelledby': 'list-title' }, h('h2', { id: 'list-title' }, t('datasets.list')), area, empty, table, more));
  await load(true);
}

// ---- one dataset ----

function countsTable(caption, rows, columns) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col' }, column)))),
    h('tbody', {}, rows.map(([head, ...cells]) => h('tr', {}, h('th', { scope: 'row' }, head), cells.map((cell) => h('td', {}, String(cell))))))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

function splitName(split) {
  return ['unsplit', 'unassigned'].includes(split) ? t(`datasets.${split}`) : split;
}

function datasetFacts(dataset) {
  const common = [[t('datasets.col.task'), t(`task.${dataset.task}`)], [t('datasets.id'), dataset.id],
    [t('datasets.col.created'), formatDate(dataset.created_at)]];
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, t('datasets.facts')));
  if (dataset.task === 'classification') {
    const counts = dataset.class_counts ?? {};
    const splits = [...new Set(Object.values(counts).flatMap((bySplit) => Object.keys(bySplit)))].sort();
    panel.append(facts([...common, [t('datasets.classes'), dataset.classes.join(', ')], [t('datasets.images'), String(dataset.image_count)]]),
      h('h3', {}, t('datasets.perClass')),
      countsTable(t('datasets.perClass'),
        dataset.classes.map((label) => [label, ...splits.map((split) => counts[label]?.[split] ?? 0),
          Object.values(counts[label] ?? {}).reduce((a, b) => a + b, 0)]),
        [t('datasets.class'), ...splits.map(splitName), t('datasets.total')]));
  } else if (dataset.task === 'detection') {
    panel.append(facts([...common, [t('datasets.format'), dataset.format.toUpperCase()], [t('datasets.classes'), dataset.classes.join(', ')],
      [t('datasets.images'), String(dataset.image_count)], [t('datasets.boxes'), String(dataset.boxes)],
      [t('datasets.perSplit'), Object.entries(dataset.images_per_split).map(([split, n]) => `${splitName(split)}: ${n}`).join(', ')]]),
    h('h3', {}, t('datasets.boxesPerClass')),
    countsTable(t('datasets.boxesPerClass'), Object.entries(dataset.boxes_per_class), [t('datasets.class'), t('datasets.boxes')]));
  } else {
    panel.append(facts([...common, [t('datasets.frames'), String(dataset.labeled_frames)], [t('datasets.instances'), String(dataset.instances)]]));
    for (const skeleton of dataset.skeletons) {
      panel.append(h('h3', {}, t('datasets.skeleton', { name: skeleton.name })),
        facts([[t('datasets.nodes'), skeleton.nodes.join(', ')], [t('datasets.edges'), skeleton.edges.map(([a, b]) => `${a}–${b}`).join(', ') || '—']]));
    }
    panel.append(h('h3', {}, t('datasets.videos')),
      countsTable(t('datasets.videos'), dataset.videos.map((video) => [video.name, video.frames, `${video.width} × ${video.height}`,
        video.embedded ? t('datasets.embedded') : (video.fps ? `${video.fps} fps` : '—')]),
      [t('datasets.video'), t('datasets.frameCount'), t('datasets.size'), t('datasets.fps')]));
  }
  return panel;
}

// Index pairs of a skeleton's edges, for annotatedCanvas.
function edgeIndexes(skeleton) {
  return skeleton.edges.map(([a, b]) => [skeleton.nodes.indexOf(a), skeleton.nodes.indexOf(b)]);
}

async function pictureElement(dataset, record, url) {
  if (dataset.task === 'classification') {
    return h('figure', {}, h('img', { src: url, width: String(record.width), height: String(record.height),
      alt: t('datasets.pictureAlt', { label: record.label, split: record.split ? splitName(record.split) : '', id: record.id }) }),
    h('figcaption', {}, record.split ? `${record.label} · ${record.split}` : record.label));
  }
  let picture = await loadImage(url);
  if (dataset.task === 'detection') {
    const labels = [...new Set(record.boxes.map((box) => box.label))].join(', ');
    const canvas = annotatedCanvas(picture, { boxes: record.boxes, label: t('datasets.boxesAlt', { source: record.source, count: record.boxes.length, labels }) });
    return h('figure', {}, canvas, h('figcaption', {}, record.split ? `${record.source} · ${record.split}` : record.source));
  }
  // Pose: each instance is joined by its own skeleton's edges (one drawing per skeleton).
  const bySkeleton = new Map();
  for (const instance of record.instances) bySkeleton.set(instance.skeleton, [...(bySkeleton.get(instance.skeleton) ?? []), instance]);
  const label = t('datasets.frameAlt', { frame: record.frame, video: record.video, count: record.instances.length });
  let canvas = null;
  for (const [index, instances] of bySkeleton) {
    if (canvas) picture = await loadImage(canvas.toDataURL('image/png'));
    canvas = annotatedCanvas(picture, { instances, edges: edgeIndexes(dataset.skeletons[index]), label });
  }
  return h('figure', {}, canvas, h('figcaption', {}, t('datasets.frameCaption', { video: record.video, frame: record.frame })));
}

function pictureBrowser(dataset, life) {
  const pose = dataset.task === 'pose';
  const section = h('section', { 'aria-labelledby': 'pictures-title' }, h('h2', { id: 'pictures-title' }, t(pose ? 'datasets.samples' : 'datasets.pictures')));
  if (pose && !dataset.samples) {
    section.append(alertBox('info', t('datasets.noSamples')));
    return section;
  }
  const urls = [];
  life.signal.addEventListener('abort', () => urls.forEach((url) => URL.revokeObjectURL(url)));
  const grid = h('ul', { class: `pictures${dataset.task === 'classification' ? '' : ' annotated'}` });
  const status = h('p', { class: 'hint', 'aria-live': 'polite' });
  const errors = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('common.more'));
  const filter = h('select', { id: 'picture-class' },
    h('option', { value: '' }, t('datasets.allClasses')), dataset.classes.map((label) => h('option', { value: label }, label)));
  let cursor = null;
  let generation = 0;  // a new filter's pages replace an older one's still loading
  const load = async (reset) => {
    const mine = reset ? ++generation : generation;
    if (reset) { cursor = null; grid.replaceChildren(); }
    more.disabled = true;
    const query = new URLSearchParams({ limit: String(PICTURES_PAGE) });
    if (filter.value) query.set('label', filter.value);
    if (cursor) query.set('cursor', cursor);
    const base = `/v1/datasets/${encodeURIComponent(dataset.id)}/images`;
    const page = await api(`${base}?${query}`, { signal: life.signal });
    const items = await Promise.all(page.items.map(async (record) => {
      const blob = await api(`${base}/${encodeURIComponent(record.id)}/content`, { as: 'blob', signal: life.signal });
      const url = URL.createObjectURL(blob);
      urls.push(url);
      return h('li', {}, await pictureElement(dataset, record, url));
    }));
    if (mine !== generation) return;
    grid.append(...items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    status.textContent = grid.children.length ? t('datasets.showing', { count: grid.children.length }) : t('datasets.noPictures');
  };
  const guarded = (reset) => load(reset).catch((error) => { if (life.alive && error.name !== 'AbortError') showError(errors, error); });
  filter.addEventListener('change', () => guarded(true));
  more.addEventListener('click', () => guarded(false));
  if (!pose) section.append(h('div', { class: 'field' }, h('label', { for: 'picture-class' }, t('datasets.filter')), filter));
  section.append(errors, status, grid, more);
  guarded(true);
  return section;
}

async function renderDataset(main, { id }, life) {
  const dataset = await api(`/v1/datasets/${encodeURIComponent(id)}`, { signal: life.signal });
  document.title = `${dataset.name} · Trainyard`;
  main.append(
    h('p', {}, h('a', { href: '#/datasets' }, `← ${t('datasets.back')}`)),
    h('h1', {}, dataset.name),
    datasetFacts(dataset),
    pictureBrowser(dataset, life));
}

register('#/datasets', renderList, { title: 'datasets.title' });
register('#/datasets/:id', renderDataset, { title: 'datasets.title' });
