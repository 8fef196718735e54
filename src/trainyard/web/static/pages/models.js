// The models: a paginated list, and a model's page with its metrics, loss plot, classes,
// parameters, versions (seed 000's feed adds them), exports to download, deletion, and a
// "try it" panel that runs the model on the user's own image (and, for pose, on a video).
//
// Everything goes through the public API. Exports and results need the Authorization header,
// so they are fetched as blobs and saved through object URLs, never linked to directly.
// Pose models have no single-image route: an image is sent as a one-frame video to the same
// inference job a video goes to, and its keypoints are drawn from the job's predictions.json.
import {
  addMessages, alertBox, api, badge, dropZone, formatDate, formatNumber, h, register, scoreBars, showError, sleep, t,
} from '../core.js';
import { annotatedCanvas, loadImage } from '../draw.js';

const PAGE_SIZE = 20;
const POLL_MS = 1500;
const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
const DEFAULT_SCORE_THRESHOLD = 0.5;  // the service's default for detectors (services/detection.py)
const DELETED_NOTICE = 'trainyard.modelDeleted';  // said on the list the page goes back to
// The metric a list row shows: the first of these the model has.
const KEY_METRICS = ['val_accuracy', 'accuracy', 'val_map_50', 'val_mean_pixel_error', 'val_loss', 'loss'];
// The file each export is stored as (the trainer's names), for the saved file's name.
const EXPORT_FILES = {
  keras: 'model.keras', onnx: 'model.onnx', tflite: 'model.tflite', coreml: 'model.mlpackage.zip',
  torch: 'model.pt', pytorchmobile: 'model.ptl', sleap: 'sleap.zip',
};
const RESULT_FILES = {
  slp: 'predictions.slp', analysis_h5: 'predictions.analysis.h5', json: 'predictions.json',
  preview_video: 'preview.mp4', preview_image: 'preview.png',
};

addMessages({
  en: {
    'models.title': 'Models', 'models.name': 'Name', 'models.task': 'Task', 'models.status': 'Status',
    'models.metric': 'Key metric', 'models.created': 'Created', 'models.empty': 'No models yet: train one from a dataset.',
    'models.metrics': 'Metrics', 'models.noMetrics': 'No metrics yet.', 'models.plot': 'Loss per epoch',
    'models.plotAlt': 'Loss per epoch of {name}: training and validation loss curves',
    'models.classes': 'Classes', 'models.keypoints': 'Keypoints', 'models.params': 'Parameters', 'models.job': 'Training job',
    'models.dataset': 'Dataset', 'models.description': 'Description', 'models.training': 'This model is still training; this page updates when it is ready.',
    'models.versions': 'Versions', 'models.version': 'Version', 'models.model': 'Model', 'models.thisVersion': '(this one)',
    'models.oneVersion': 'This is the only version. Feeding the model new images (seed 000) adds versions.',
    'models.exports': 'Exports', 'models.noExports': 'No exports yet.', 'models.download': 'Download {format}',
    'models.downloading': 'Downloading {format}…', 'models.downloaded': '{file} downloaded.',
    'models.delete': 'Delete model', 'models.confirmDelete': 'Delete {name} and its exports? This cannot be undone.',
    'models.confirm': 'Delete', 'models.keep': 'Keep it', 'models.deleted': 'Model {name} deleted.',
    'try.title': 'Try it', 'try.drop': 'Drop an image here, or choose one:', 'try.image': 'Image',
    'try.running': 'Predicting…', 'try.yourImage': 'Your image: {name}', 'try.top': 'Top {k} labels',
    'try.threshold': 'Score threshold', 'try.detections': '{count} detection(s) at a score of {threshold} or more',
    'try.noDetections': 'Nothing found at a score of {threshold} or more; lower the threshold.',
    'try.boxesAlt': '{name} with {count} detected box(es)', 'try.keypointsAlt': '{name} with {count} keypoint(s) of {instances} instance(s)',
    'try.noInstance': 'No animal found in this image.', 'try.poseImage': 'The image runs as a one-frame inference job.',
    'try.notPredictable': 'This kind of model is not run on single images.', 'try.notReady': 'The model can be tried once it is ready.',
    'video.title': 'Run on a video', 'video.file': 'Video', 'video.run': 'Run on the video',
    'video.hint': 'Launches an inference job on every frame; the result video shows the keypoints.',
    'video.job': 'Inference job {id}', 'video.progress': '{status}: {done} of {total} frames',
    'video.progressUnknown': '{status}…', 'video.done': 'Done: keypoints found in {found} of {total} frames.',
    'video.failed': 'The job failed: {error}', 'video.result': 'Result video with the keypoints drawn',
    'video.preview': 'Frames of the result, with the keypoints drawn', 'video.downloads': 'Results to download',
    'task.classification': 'Classification', 'task.detection': 'Detection', 'task.pose': 'Pose', 'task.tag': 'Tag',
    'task.embedder': 'Embedder',
  },
  fr: {
    'models.title': 'Modèles', 'models.name': 'Nom', 'models.task': 'Tâche', 'models.status': 'État',
    'models.metric': 'Métrique principale', 'models.created': 'Créé le', 'models.empty': 'Aucun modèle : entraînez-en un à partir d’un jeu de données.',
    'models.metrics': 'Métriques', 'models.noMetrics': 'Pas encore de métriques.', 'models.plot': 'Perte par époque',
    'models.plotAlt': 'Perte par époque de {name} : courbes de perte d’entraînement et de validation',
    'models.classes': 'Classes', 'models.keypoints': 'Points clés', 'models.params': 'Paramètres', 'models.job': 'Tâche d’entraînement',
    'models.dataset': 'Jeu de données', 'models.description': 'Description', 'models.training': 'Ce modèle est encore en entraînement ; cette page se met à jour quand il est prêt.',
    'models.versions': 'Versions', 'models.version': 'Version', 'models.model': 'Modèle', 'models.thisVersion': '(celle-ci)',
    'models.oneVersion': 'C’est la seule version. Nourrir le modèle de nouvelles images (seed 000) ajoute des versions.',
    'models.exports': 'Exports', 'models.noExports': 'Pas encore d’export.', 'models.download': 'Télécharger {format}',
    'models.downloading': 'Téléchargement de {format}…', 'models.downloaded': '{file} téléchargé.',
    'models.delete': 'Supprimer le modèle', 'models.confirmDelete': 'Supprimer {name} et ses exports ? C’est définitif.',
    'models.confirm': 'Supprimer', 'models.keep': 'Le garder', 'models.deleted': 'Modèle {name} supprimé.',
    'try.title': 'Essayer', 'try.drop': 'Déposez une image ici, ou choisissez-en une :', 'try.image': 'Image',
    'try.running': 'Prédiction…', 'try.yourImage': 'Votre image : {name}', 'try.top': '{k} meilleures étiquettes',
    'try.threshold': 'Seuil de score', 'try.detections': '{count} détection(s) de score {threshold} ou plus',
    'try.noDetections': 'Rien trouvé avec un score de {threshold} ou plus ; baissez le seuil.',
    'try.boxesAlt': '{name} avec {count} boîte(s) détectée(s)', 'try.keypointsAlt': '{name} avec {count} point(s) clé(s) de {instances} instance(s)',
    'try.noInstance': 'Aucun animal trouvé sur cette image.', 'try.poseImage': 'L’image passe par une tâche d’inférence d’une seule image.',
    'try.notPredictable': 'Ce type de modèle ne s’essaie pas sur une image.', 'try.notReady': 'Le modèle pourra être essayé une fois prêt.',
    'video.title': 'Lancer sur une vidéo', 'video.file': 'Vidéo', 'video.run': 'Lancer sur la vidéo',
    'video.hint': 'Lance une tâche d’inférence sur chaque image ; la vidéo résultat montre les points clés.',
    'video.job': 'Tâche d’inférence {id}', 'video.progress': '{status} : {done} images sur {total}',
    'video.progressUnknown': '{status}…', 'video.done': 'Terminé : points clés trouvés sur {found} images sur {total}.',
    'video.failed': 'La tâche a échoué : {error}', 'video.result': 'Vidéo résultat avec les points clés',
    'video.preview': 'Images du résultat, avec les points clés', 'video.downloads': 'Résultats à télécharger',
    'task.classification': 'Classification', 'task.detection': 'Détection', 'task.pose': 'Pose', 'task.tag': 'Étiquette',
    'task.embedder': 'Extracteur',
  },
});

document.head.append(h('style', {}, `
  .model-try .result { display: grid; grid-template-columns: minmax(0, 20rem) minmax(0, 1fr); gap: 1rem; align-items: start; margin-top: 1rem; }
  .model-try img, .model-try canvas, .model-try video, .model-plot img { max-width: 100%; height: auto; }
  .model-try figure { margin: .75rem 0; }
  .model-try video { width: 20rem; }
  .model-try img.input, .model-try canvas { width: 20rem; image-rendering: pixelated; border: 1px solid var(--border); }
  .model-try ol.detections { margin: .5rem 0; padding-left: 1.5rem; }
  .model-actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
  .model-page dl.facts dd { overflow-wrap: anywhere; }
  .model-page .grid { align-items: start; }
  @media (max-width: 700px) { .model-try .result { grid-template-columns: 1fr; } }
`));

// ---- the list ----

function keyMetric(metrics) {
  const name = KEY_METRICS.find((key) => typeof metrics?.[key] === 'number');
  return name ? `${name} ${formatNumber(metrics[name])}` : '—';
}

register('#/models', async (main, _params, life) => {
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('common.more'));
  const status = h('div', { 'aria-live': 'polite' });
  main.append(h('h1', {}, t('models.title')), status,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['models.name', 'models.task', 'models.status', 'models.metric', 'models.created']
        .map((key) => h('th', { scope: 'col' }, t(key))))),
      body)),
    h('p', {}, more));
  const notice = sessionStorage.getItem(DELETED_NOTICE);
  if (notice) {
    sessionStorage.removeItem(DELETED_NOTICE);
    status.append(alertBox('success', notice));
  }
  let cursor = null;
  async function loadPage() {
    more.disabled = true;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(cursor ? { cursor } : {}) });
    const page = await api(`/v1/models?${query}`, { signal: life.signal });
    for (const model of page.items) {
      body.append(h('tr', {},
        h('td', {}, h('a', { href: `#/models/${encodeURIComponent(model.id)}` }, model.name)),
        h('td', {}, t(`task.${model.task}`)),
        h('td', {}, badge(model.status)),
        h('td', {}, keyMetric(model.metrics)),
        h('td', {}, formatDate(model.created_at))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    if (!body.children.length) status.append(alertBox('info', t('models.empty')));
  }
  more.addEventListener('click', () => loadPage().catch((error) => showError(status, error)));
  await loadPage();
}, { title: 'models.title' });

// ---- a model ----

function facts(entries) {
  return h('dl', { class: 'facts' }, entries.flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]));
}

function shown(value) {
  if (typeof value === 'number') return formatNumber(value);
  if (value === null || value === undefined) return '—';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

// Save a blob under `filename` as a browser download.
function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function downloadButton(label, path, filename, status, signal) {
  return h('button', { type: 'button', class: 'secondary', onclick: async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    status.replaceChildren(alertBox('info', t('models.downloading', { format: label })));
    try {
      saveBlob(await api(path, { as: 'blob', signal }), filename);
      status.replaceChildren(alertBox('success', t('models.downloaded', { file: filename })));
    } catch (error) {
      if (error.name !== 'AbortError') showError(status, error);
    } finally {
      button.disabled = false;
    }
  } }, t('models.download', { format: label }));
}

register('#/models/:id', async (main, { id }, life) => {
  const path = `/v1/models/${encodeURIComponent(id)}`;
  let model = await api(path, { signal: life.signal });
  const draw = async () => {
    const versions = await api(`${path}/versions?limit=100`, { signal: life.signal });
    main.replaceChildren(h('div', { class: 'model-page' }, ...modelView(model, versions.items, life)));
  };
  await draw();
  while (model.status === 'training') {  // redrawn once training ends
    await sleep(POLL_MS * 2);
    if (!life.alive) return;
    const now = await api(path, { signal: life.signal });
    if (now.status !== model.status) {
      model = now;
      await draw();
    }
  }
}, { title: 'models.title' });

function modelView(model, versions, life) {
  const skeleton = model.skeleton;
  const headline = h('h1', {}, model.name, ' ', badge(model.status));
  const about = facts([
    [t('models.task'), t(`task.${model.task}`)],
    [t('models.created'), formatDate(model.created_at)],
    [t('models.job'), h('a', { href: `#/jobs/${encodeURIComponent(model.job_id)}` }, model.job_id)],
    [t('models.dataset'), model.dataset_id],
    ...(model.description ? [[t('models.description'), model.description]] : []),
  ]);
  const metrics = Object.entries(model.metrics ?? {});
  const plot = h('img', { src: `data:image/png;base64,${model.plot_loss}`, alt: t('models.plotAlt', { name: model.name }) });
  return [
    headline,
    model.status === 'training' ? alertBox('info', t('models.training')) : null,
    h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'model-about' }, h('h2', { id: 'model-about' }, model.id), about),
      h('section', { class: 'panel', 'aria-labelledby': 'model-metrics' }, h('h2', { id: 'model-metrics' }, t('models.metrics')),
        metrics.length ? facts(metrics.map(([name, value]) => [name, formatNumber(value)])) : h('p', {}, t('models.noMetrics')))),
    h('section', { class: 'panel model-plot', 'aria-labelledby': 'model-plot' }, h('h2', { id: 'model-plot' }, t('models.plot')), plot),
    tryPanel(model, life),
    h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'model-classes' },
        h('h2', { id: 'model-classes' }, t(model.task === 'pose' ? 'models.keypoints' : 'models.classes')),
        h('p', {}, (model.classes ?? []).join(', ') || '—'),
        skeleton?.edges?.length ? h('p', { class: 'hint' }, skeleton.edges.map(([a, b]) => `${a}–${b}`).join(', ')) : null),
      h('section', { class: 'panel', 'aria-labelledby': 'model-params' }, h('h2', { id: 'model-params' }, t('models.params')),
        facts(Object.entries(model.params ?? {}).map(([name, value]) => [name, shown(value)])))),
    versionsPanel(model, versions),
    exportsPanel(model, life),
    deletePanel(model),
  ];
}

function versionsPanel(model, versions) {
  const rows = versions.map((version) => h('tr', {},
    h('td', {}, String(version.version)),
    h('td', {}, version.id === model.id
      ? h('span', { 'aria-current': 'page' }, `${version.id} ${t('models.thisVersion')}`)
      : h('a', { href: `#/models/${encodeURIComponent(version.id)}` }, version.id)),
    h('td', {}, badge(version.status)),
    h('td', {}, keyMetric(version.metrics)),
    h('td', {}, formatDate(version.created_at))));
  return h('section', { class: 'panel', 'aria-labelledby': 'model-versions' },
    h('h2', { id: 'model-versions' }, t('models.versions')),
    versions.length > 1 || model.task !== 'classification' ? null : h('p', { class: 'hint' }, t('models.oneVersion')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['models.version', 'models.model', 'models.status', 'models.metric', 'models.created']
        .map((key) => h('th', { scope: 'col' }, t(key))))),
      h('tbody', {}, rows))));
}

function exportsPanel(model, life) {
  const status = h('div', { 'aria-live': 'polite' });
  const stem = `${model.name.replace(/[^\w.-]+/g, '_')}-${model.id}`;
  const buttons = (model.exports ?? []).map((format) => downloadButton(format.toUpperCase(),
    `/v1/models/${encodeURIComponent(model.id)}/exports/${format}`, `${stem}-${EXPORT_FILES[format] ?? format}`, status, life.signal));
  return h('section', { class: 'panel', 'aria-labelledby': 'model-exports' },
    h('h2', { id: 'model-exports' }, t('models.exports')),
    buttons.length ? h('div', { class: 'model-actions' }, buttons) : h('p', {}, t('models.noExports')), status);
}

function deletePanel(model) {
  const status = h('div', { 'aria-live': 'assertive' });
  const confirmation = h('div', { class: 'alert error', role: 'alertdialog', 'aria-labelledby': 'delete-question', hidden: true });
  const ask = h('button', { type: 'button', class: 'danger', onclick: () => {
    confirmation.hidden = false;
    ask.hidden = true;
    confirmation.querySelector('button').focus();
  } }, t('models.delete'));
  const keep = () => { confirmation.hidden = true; ask.hidden = false; ask.focus(); };
  confirmation.append(h('p', { id: 'delete-question' }, t('models.confirmDelete', { name: model.name })),
    h('div', { class: 'model-actions' },
      h('button', { type: 'button', class: 'secondary', onclick: keep }, t('models.keep')),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        try {
          await api(`/v1/models/${encodeURIComponent(model.id)}`, { method: 'DELETE' });
          sessionStorage.setItem(DELETED_NOTICE, t('models.deleted', { name: model.name }));
          location.hash = '#/models';
        } catch (error) {
          keep();
          showError(status, error);
        }
      } }, t('models.confirm'))));
  return h('section', { class: 'panel' }, h('div', { class: 'model-actions' }, ask), confirmation, status);
}

// ---- try it ----

function tryPanel(model, life) {
  const section = h('section', { class: 'panel model-try', 'aria-labelledby': 'model-try' }, h('h2', { id: 'model-try' }, t('try.title')));
  if (model.status !== 'ready' || model.task === 'embedder') {
    section.append(h('p', {}, t(model.status !== 'ready' ? 'try.notReady' : 'try.notPredictable')));
    return section;
  }
  const status = h('div', { 'aria-live': 'polite' });
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  let lastFile = null;
  const controls = [];
  let threshold = null;
  if (model.task === 'detection') {
    threshold = h('input', { id: 'score-threshold', type: 'number', min: '0', max: '1', step: '0.05', value: String(DEFAULT_SCORE_THRESHOLD) });
    threshold.addEventListener('change', () => lastFile && run(lastFile));
    controls.push(h('div', { class: 'field' }, h('label', { for: 'score-threshold' }, t('try.threshold')), threshold));
  }
  const run = async (file) => {
    lastFile = file;
    result.replaceChildren();
    status.replaceChildren(alertBox('info', t('try.running')));
    try {
      const url = URL.createObjectURL(file);
      const image = await loadImage(url);
      let view;
      if (model.task === 'pose') view = await poseOnImage(model, file, image, status, life);
      else if (model.task === 'detection') view = await detect(model, file, image, threshold.value, life);
      else view = await classify(model, file, url, life);
      status.replaceChildren();
      result.replaceChildren(...view);
    } catch (error) {
      if (error.name !== 'AbortError') showError(status, error);
    }
  };
  if (model.task === 'pose') section.append(h('p', { class: 'hint' }, t('try.poseImage')));
  const zone = dropZone({
    id: 'try-image', prompt: t('try.drop'), label: t('try.image'), accept: 'image/*', onFiles: ([file]) => run(file),
  });
  section.append(...controls, zone, status, result);
  if (model.task === 'pose') section.append(videoPanel(model, life));
  return section;
}

function predictForm(file, options = {}) {
  const form = new FormData();
  form.append('file', file, file.name);
  for (const [name, value] of Object.entries(options)) form.append(name, String(value));
  return form;
}

async function classify(model, file, url, life) {
  const answer = await api(`/v1/models/${encodeURIComponent(model.id)}/predict`, { form: predictForm(file), signal: life.signal });
  return [
    h('img', { class: 'input', src: url, alt: t('try.yourImage', { name: file.name }) }),
    h('div', {}, h('h3', {}, t('try.top', { k: answer.predictions.length })), scoreBars(answer.predictions)),
  ];
}

async function detect(model, file, image, threshold, life) {
  const answer = await api(`/v1/models/${encodeURIComponent(model.id)}/predict`,
    { form: predictForm(file, { score_threshold: threshold }), signal: life.signal });
  const boxes = answer.boxes.map((b) => ({ box: [b.x_min, b.y_min, b.x_max, b.y_max], label: b.label, score: b.score }));
  const canvas = annotatedCanvas(image, { boxes, label: t('try.boxesAlt', { name: file.name, count: boxes.length }) });
  const summary = boxes.length
    ? t('try.detections', { count: boxes.length, threshold })
    : t('try.noDetections', { threshold });
  return [canvas, h('div', {}, h('p', {}, summary),
    h('ol', { class: 'detections' }, answer.boxes.map((b) => h('li', {},
      `${b.label} ${(b.score * 100).toFixed(1)} % — [${[b.x_min, b.y_min, b.x_max, b.y_max].map((v) => Math.round(v)).join(', ')}]`))))];
}

// Start a pose inference job on `file` (an image or a video) and poll it until it ends;
// `onProgress(job)` sees every poll. Resolves to the finished job, or throws with its error.
async function inferenceJob(model, file, params, life, onProgress) {
  const form = new FormData();
  form.append('type', 'infer');
  form.append('task', 'pose');
  form.append('model_id', model.id);
  form.append('params', JSON.stringify(params));
  form.append('video', file, file.name);
  let job = await api('/v1/jobs', { form, signal: life.signal });
  onProgress(job);
  while (!TERMINAL.includes(job.status)) {
    await sleep(POLL_MS);
    if (!life.alive) throw new DOMException('left the page', 'AbortError');
    job = await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { signal: life.signal });
    onProgress(job);
  }
  if (job.status !== 'SUCCEEDED') throw new Error(t('video.failed', { error: job.error ?? t(`status.${job.status}`) }));
  return job;
}

// predictions.json's instances as draw.js wants them: points in the skeleton's node order.
function instancesOf(frame, nodes) {
  return (frame?.instances ?? []).map((instance) => ({
    points: nodes.map((node) => {
      const [x, y] = instance.points[node] ?? [null, null];
      return x === null || y === null ? null : [x, y];
    }),
  }));
}

function edgeIndices(skeleton) {
  return (skeleton?.edges ?? []).map(([a, b]) => [skeleton.nodes.indexOf(a), skeleton.nodes.indexOf(b)]);
}

function jobLink(job) {
  return h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, t('video.job', { id: job.id }));
}

async function poseOnImage(model, file, image, status, life) {
  const job = await inferenceJob(model, file, { preview: 'none' }, life, (current) =>
    status.replaceChildren(alertBox('info', [t('try.running'), ' ', t(`status.${current.status}`)].join(''))));
  const results = await api(`/v1/jobs/${encodeURIComponent(job.id)}/results`, { signal: life.signal });
  const predictions = await api(results.downloads.json, { signal: life.signal });
  const skeleton = predictions.skeleton ?? model.skeleton;
  const instances = instancesOf(predictions.frames[0], skeleton.nodes);
  const found = instances.reduce((sum, instance) => sum + instance.points.filter(Boolean).length, 0);
  const canvas = annotatedCanvas(image, { instances, edges: edgeIndices(skeleton),
    label: t('try.keypointsAlt', { name: file.name, count: found, instances: instances.length }) });
  const listed = instances.length
    ? h('ul', {}, instances.flatMap((instance) => skeleton.nodes.map((node, i) => h('li', {},
      `${node}: ${instance.points[i] ? instance.points[i].map((v) => Math.round(v)).join(', ') : '—'}`))))
    : h('p', {}, t('try.noInstance'));
  return [canvas, h('div', {}, h('h3', {}, t('models.keypoints')), listed, h('p', {}, jobLink(job)))];
}

function videoPanel(model, life) {
  const input = h('input', { id: 'pose-video', type: 'file', accept: 'video/*' });
  const progress = h('progress', { class: 'progress', max: '1', value: '0', hidden: true, 'aria-labelledby': 'video-status' });
  const status = h('p', { id: 'video-status', 'aria-live': 'polite' });
  const result = h('div', {});
  const button = h('button', { type: 'button', onclick: async () => {
    const file = input.files[0];
    if (!file) { input.focus(); return; }
    button.disabled = true;
    result.replaceChildren();
    progress.hidden = false;
    progress.removeAttribute('value');
    try {
      const job = await inferenceJob(model, file, {}, life, (current) => {
        const values = { status: t(`status.${current.status}`), done: current.progress_done, total: current.progress_total };
        status.replaceChildren(current.progress_total ? t('video.progress', values) : t('video.progressUnknown', values), ' ', jobLink(current));
        if (current.progress_total) { progress.max = String(current.progress_total); progress.value = String(current.progress_done); }
      });
      progress.hidden = true;
      const results = await api(`/v1/jobs/${encodeURIComponent(job.id)}/results`, { signal: life.signal });
      status.replaceChildren(t('video.done', { found: results.frames.with_instances, total: results.frames.predicted }), ' ', jobLink(job));
      result.replaceChildren(...await videoResults(job, results, life));
    } catch (error) {
      progress.hidden = true;
      if (error.name !== 'AbortError') showError(status, error);
    } finally {
      button.disabled = false;
    }
  } }, t('video.run'));
  return h('div', {}, h('h3', {}, t('video.title')), h('p', { class: 'hint' }, t('video.hint')),
    h('div', { class: 'field' }, h('label', { for: 'pose-video' }, t('video.file')), input),
    h('div', { class: 'model-actions' }, button), progress, status, result);
}

async function videoResults(job, results, life) {
  const shown = [];
  const blobUrl = async (kind) => URL.createObjectURL(await api(results.downloads[kind], { as: 'blob', signal: life.signal }));
  if (results.downloads.preview_video) {
    shown.push(h('figure', {}, h('video', { src: await blobUrl('preview_video'), controls: true, muted: true, playsinline: true,
      'aria-label': t('video.result') }), h('figcaption', {}, t('video.result'))));
  }
  if (results.downloads.preview_image) {
    shown.push(h('figure', {}, h('img', { src: await blobUrl('preview_image'), alt: t('video.preview') }),
      h('figcaption', {}, t('video.preview'))));
  }
  const status = h('div', { 'aria-live': 'polite' });
  const buttons = Object.keys(results.downloads).map((kind) => downloadButton(RESULT_FILES[kind] ?? kind,
    results.downloads[kind], `${job.id}-${RESULT_FILES[kind] ?? kind}`, status, life.signal));
  shown.push(h('h4', {}, t('video.downloads')), h('div', { class: 'model-actions' }, buttons), status);
  return shown;
}
