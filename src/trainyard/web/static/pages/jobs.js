// The jobs pages: the list (with the form that starts a training job) at #/jobs, and one job at
// #/jobs/:id with its live progress, metric charts that grow while it trains, its webhook
// deliveries, cancellation and, for an inference job, its results. Both poll the API while a
// job is not finished; everything they show comes from the public /v1 routes.
import { addMessages, alertBox, api, badge, formatDate, formatDuration, formatNumber, h, register, showError, t } from '../core.js';
import { lineChart } from '../charts.js';

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const POLL_MS = 1000;
const LIST_POLL_MS = 2000;
// Deliveries are recorded when the job ends and sent by a background worker: the log keeps
// being read this long after the job ended, until none is pending.
const WEBHOOK_SETTLE_MS = 60_000;

// What POST /v1/jobs accepts per task (src/trainyard/params.py): the choices, and the API's
// defaults shown as the fields' initial values.
const TASK_FORMS = {
  classification: {
    choices: { backbone: ['small_cnn', 'mobilenet', 'mobilenet_v2', 'efficientnet_b0', 'resnet50', 'vgg16'] },
    numbers: { epochs: 10, image_size: 224, batch_size: 32, learning_rate: 0.001 },
    exports: true,
  },
  detection: {
    choices: { backbone: ['resnet_small', 'resnet18', 'resnet50'] },
    numbers: { epochs: 20, image_size: 256, batch_size: 16, learning_rate: 0.001 },
    exports: true,
  },
  pose: {
    choices: { model_type: ['single_instance', 'topdown', 'bottomup'], backbone: ['unet', 'unet_medium_rf', 'unet_large_rf', 'convnext', 'swint'] },
    numbers: { epochs: 50, batch_size: 4, learning_rate: 0.0001 },
    exports: false,
  },
};
const EXPORT_FORMATS = ['keras', 'onnx', 'tflite', 'coreml', 'torch', 'pytorchmobile'];
const DEFAULT_EXPORTS = new Set(['keras', 'onnx', 'tflite']);
const WIDE = 'width:100%; max-width:32rem';  // text fields sized for names and URLs
// Per-epoch fields that are not metrics to chart.
const NOT_CHARTED = new Set(['epoch', 'lr', 'duration_seconds']);

addMessages({
  en: {
    'jobs.title': 'Jobs', 'jobs.list': 'Your jobs', 'jobs.none': 'No jobs yet: start one below.',
    'jobs.col.job': 'Job', 'jobs.col.status': 'Status', 'jobs.col.task': 'Task', 'jobs.col.model': 'Model',
    'jobs.col.dataset': 'Dataset', 'jobs.col.created': 'Created', 'jobs.col.duration': 'Duration',
    'jobs.type.train': 'training', 'jobs.type.infer': 'inference',
    'jobs.new': 'Start a training job', 'jobs.dataset': 'Dataset', 'jobs.noDatasets': 'There is no dataset to train on yet.',
    'jobs.uploadFirst': 'Upload a dataset', 'jobs.modelName': 'Model name', 'jobs.description': 'Description (optional)',
    'jobs.params': 'Parameters ({task})', 'jobs.exports': 'Exports', 'jobs.exportsHint': 'ONNX is always made: predictions run on it.',
    'jobs.webhook': 'Webhook URL (optional)', 'jobs.webhookHint': 'Told when the job ends (job.succeeded, job.failed, job.cancelled). Registered endpoints are suggested.',
    'jobs.start': 'Start training', 'jobs.starting': 'Starting…',
    'param.epochs': 'Epochs', 'param.backbone': 'Backbone', 'param.model_type': 'Model type', 'param.image_size': 'Image size (pixels)',
    'param.batch_size': 'Batch size', 'param.learning_rate': 'Learning rate',
    'job.title': 'Job {id}', 'job.back': 'All jobs', 'job.facts': 'Details', 'job.task': 'Task', 'job.dataset': 'Dataset',
    'job.model': 'Model', 'job.created': 'Created', 'job.started': 'Started', 'job.finished': 'Finished', 'job.duration': 'Duration',
    'job.params': 'Parameters', 'job.webhookUrl': 'Webhook URL', 'job.status': 'Status',
    'job.progress': 'Progress', 'job.epochOf': 'Epoch {k} of {n}', 'job.workOf': '{k} of {n} {unit}', 'job.work': '{k} {unit}',
    'job.waiting': 'Waiting for the first epoch…', 'job.eta': 'Time left (estimate): {eta}', 'job.etaUnknown': 'Time left: known after the first epoch',
    'job.lastEpoch': 'Last epoch took {duration}', 'job.took': 'Took {duration}', 'job.failed': 'The job failed: {error}',
    'job.openModel': 'Open the model', 'job.usedModel': 'Model used',
    'job.cancel': 'Cancel the job', 'job.confirmCancel': 'Stop this job? What it has trained so far is lost.',
    'job.confirmYes': 'Yes, cancel it', 'job.confirmNo': 'Keep it running', 'job.cancelled': 'The job was cancelled.',
    'job.charts': 'Metrics', 'job.noMetrics': 'The charts appear with the first epoch.', 'job.epoch': 'Epoch',
    'chart.loss': 'Loss per epoch', 'chart.lossDesc': 'Training and validation loss after each epoch.',
    'chart.score': 'Scores per epoch', 'chart.scoreDesc': 'Accuracy or mean average precision after each epoch.',
    'metric.loss': 'loss (training)', 'metric.val_loss': 'val_loss (validation)', 'metric.accuracy': 'accuracy (training)',
    'metric.val_accuracy': 'val_accuracy (validation)', 'metric.val_map_50': 'val_map_50 (mAP at IoU 0.5)',
    'metric.val_map_50_95': 'val_map_50_95 (mAP at IoU 0.5–0.95)', 'metric.value': 'Value',
    'webhooks.title': 'Webhook deliveries', 'webhooks.none': 'No webhook deliveries.', 'webhooks.noUrl': 'This job has no webhook URL.',
    'webhooks.attempt': 'Series {series}, attempt {attempt}: {result} at {at} ({ms} ms)', 'webhooks.http': 'HTTP {code}',
    'webhooks.noAttempt': 'Not attempted yet.', 'webhooks.redeliver': 'Redeliver {event}', 'webhooks.redelivered': 'Sent again: a new series of attempts.',
    'results.title': 'Results', 'results.downloads': 'Downloads', 'results.download': 'Download {kind}',
    'results.video': 'Preview video of the predicted poses', 'results.image': 'Preview frame with the predicted poses',
    'status.delivered': 'Delivered', 'status.pending': 'Pending',
  },
  fr: {
    'jobs.title': 'Tâches', 'jobs.list': 'Vos tâches', 'jobs.none': 'Aucune tâche : lancez-en une ci-dessous.',
    'jobs.col.job': 'Tâche', 'jobs.col.status': 'État', 'jobs.col.task': 'Type', 'jobs.col.model': 'Modèle',
    'jobs.col.dataset': 'Jeu de données', 'jobs.col.created': 'Créée', 'jobs.col.duration': 'Durée',
    'jobs.type.train': 'entraînement', 'jobs.type.infer': 'inférence',
    'jobs.new': 'Lancer un entraînement', 'jobs.dataset': 'Jeu de données', 'jobs.noDatasets': 'Aucun jeu de données à entraîner pour l’instant.',
    'jobs.uploadFirst': 'Envoyer un jeu de données', 'jobs.modelName': 'Nom du modèle', 'jobs.description': 'Description (facultative)',
    'jobs.params': 'Paramètres ({task})', 'jobs.exports': 'Exports', 'jobs.exportsHint': 'ONNX est toujours produit : les prédictions l’utilisent.',
    'jobs.webhook': 'URL de webhook (facultative)', 'jobs.webhookHint': 'Prévenue à la fin de la tâche (job.succeeded, job.failed, job.cancelled). Les adresses enregistrées sont proposées.',
    'jobs.start': 'Lancer l’entraînement', 'jobs.starting': 'Lancement…',
    'param.epochs': 'Époques', 'param.backbone': 'Architecture', 'param.model_type': 'Type de modèle', 'param.image_size': 'Taille des images (pixels)',
    'param.batch_size': 'Taille de lot', 'param.learning_rate': 'Taux d’apprentissage',
    'job.title': 'Tâche {id}', 'job.back': 'Toutes les tâches', 'job.facts': 'Détails', 'job.task': 'Type', 'job.dataset': 'Jeu de données',
    'job.model': 'Modèle', 'job.created': 'Créée', 'job.started': 'Démarrée', 'job.finished': 'Terminée', 'job.duration': 'Durée',
    'job.params': 'Paramètres', 'job.webhookUrl': 'URL de webhook', 'job.status': 'État',
    'job.progress': 'Avancement', 'job.epochOf': 'Époque {k} sur {n}', 'job.workOf': '{k} sur {n} {unit}', 'job.work': '{k} {unit}',
    'job.waiting': 'En attente de la première époque…', 'job.eta': 'Temps restant (estimation) : {eta}', 'job.etaUnknown': 'Temps restant : connu après la première époque',
    'job.lastEpoch': 'Dernière époque : {duration}', 'job.took': 'Durée : {duration}', 'job.failed': 'La tâche a échoué : {error}',
    'job.openModel': 'Ouvrir le modèle', 'job.usedModel': 'Modèle utilisé',
    'job.cancel': 'Annuler la tâche', 'job.confirmCancel': 'Arrêter cette tâche ? Ce qui a été entraîné jusqu’ici est perdu.',
    'job.confirmYes': 'Oui, l’annuler', 'job.confirmNo': 'La laisser continuer', 'job.cancelled': 'La tâche a été annulée.',
    'job.charts': 'Métriques', 'job.noMetrics': 'Les courbes apparaissent avec la première époque.', 'job.epoch': 'Époque',
    'chart.loss': 'Perte par époque', 'chart.lossDesc': 'Perte d’entraînement et de validation après chaque époque.',
    'chart.score': 'Scores par époque', 'chart.scoreDesc': 'Précision ou mAP après chaque époque.',
    'metric.loss': 'loss (entraînement)', 'metric.val_loss': 'val_loss (validation)', 'metric.accuracy': 'accuracy (entraînement)',
    'metric.val_accuracy': 'val_accuracy (validation)', 'metric.val_map_50': 'val_map_50 (mAP à IoU 0,5)',
    'metric.val_map_50_95': 'val_map_50_95 (mAP à IoU 0,5–0,95)', 'metric.value': 'Valeur',
    'webhooks.title': 'Envois de webhooks', 'webhooks.none': 'Aucun envoi de webhook.', 'webhooks.noUrl': 'Cette tâche n’a pas d’URL de webhook.',
    'webhooks.attempt': 'Série {series}, essai {attempt} : {result} à {at} ({ms} ms)', 'webhooks.http': 'HTTP {code}',
    'webhooks.noAttempt': 'Pas encore essayé.', 'webhooks.redeliver': 'Renvoyer {event}', 'webhooks.redelivered': 'Renvoyé : une nouvelle série d’essais.',
    'results.title': 'Résultats', 'results.downloads': 'Téléchargements', 'results.download': 'Télécharger {kind}',
    'results.video': 'Vidéo d’aperçu des poses prédites', 'results.image': 'Image d’aperçu des poses prédites',
    'status.delivered': 'Livré', 'status.pending': 'En attente',
  },
});

function seconds(from, to) {
  return from ? ((to ? new Date(to) : new Date()) - new Date(from)) / 1000 : null;
}

function taskLabel(job) {
  return `${job.task} · ${t(`jobs.type.${job.type}`)}`;
}

// ---------------------------------------------------------------- the list and the new-job form

// id → name of the first page of the tenant's datasets and models (names shown in the list).
async function namesById(path, signal) {
  const { items } = await api(`${path}?limit=100`, { signal });
  return { items, names: new Map(items.map((item) => [item.id, item.name])) };
}

function jobRow(job, datasets, models) {
  return h('tr', { dataset: { jobId: job.id } },
    h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id)),
    h('td', {}, badge(job.status)),
    h('td', {}, taskLabel(job)),
    h('td', {}, models.get(job.model_id) ?? job.model_id),
    h('td', {}, job.dataset_id ? (datasets.get(job.dataset_id) ?? job.dataset_id) : '—'),
    h('td', {}, formatDate(job.created_at)),
    h('td', {}, formatDuration(seconds(job.started_at, job.finished_at))));
}

async function renderList(main, _params, life) {
  const [datasets, models] = await Promise.all([namesById('/v1/datasets', life.signal), namesById('/v1/models', life.signal)]);
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('common.more'));
  const listStatus = h('div', { 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'visually-hidden' }, t('jobs.list')),
    h('thead', {}, h('tr', {}, ['job', 'status', 'task', 'model', 'dataset', 'created', 'duration'].map((col) => h('th', { scope: 'col' }, t(`jobs.col.${col}`))))),
    body));
  const shown = new Map();  // job id → its row's current job record
  let cursor = null;

  async function loadPage() {
    const page = await api(`/v1/jobs?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { signal: life.signal });
    for (const job of page.items) {
      shown.set(job.id, job);
      body.append(jobRow(job, datasets.names, models.names));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    listStatus.replaceChildren(...(shown.size ? [] : [alertBox('info', t('jobs.none'))]));
  }
  more.addEventListener('click', async () => {
    more.disabled = true;
    try { await loadPage(); } catch (error) { showError(listStatus, error); } finally { more.disabled = false; }
  });

  main.append(h('h1', {}, t('jobs.title')),
    h('section', { 'aria-labelledby': 'jobs-list-title', style: 'margin-bottom:1.5rem' }, h('h2', { id: 'jobs-list-title' }, t('jobs.list')), listStatus, table, more),
    newJobForm(datasets.items, life));
  await loadPage();

  // Rows of unfinished jobs are read again until they finish.
  life.every(LIST_POLL_MS, async () => {
    for (const [id, job] of shown) {
      if (TERMINAL.has(job.status)) continue;
      const fresh = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal: life.signal });
      shown.set(id, fresh);
      body.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`)?.replaceWith(jobRow(fresh, datasets.names, models.names));
    }
  });
}

function field(id, label, control, hint) {
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

function parameterFields(task) {
  const spec = TASK_FORMS[task];
  const fields = [];
  for (const [name, options] of Object.entries(spec.choices)) {
    fields.push(field(`job-${name}`, t(`param.${name}`),
      h('select', { id: `job-${name}`, name }, options.map((option) => h('option', { value: option }, option)))));
  }
  for (const [name, initial] of Object.entries(spec.numbers)) {
    const integer = name !== 'learning_rate';
    fields.push(field(`job-${name}`, t(`param.${name}`),
      h('input', { id: `job-${name}`, name, type: 'number', inputmode: integer ? 'numeric' : 'decimal', step: integer ? '1' : 'any', value: String(initial) })));
  }
  const grid = h('div', { class: 'grid' }, fields);
  if (!spec.exports) return [grid];
  const boxes = EXPORT_FORMATS.map((format) => h('label', { style: 'display:inline-flex; gap:.3rem; margin-right:1rem; font-weight:normal' },
    h('input', { type: 'checkbox', name: 'exports', value: format, checked: DEFAULT_EXPORTS.has(format), disabled: format === 'onnx' }), format));
  return [grid, h('fieldset', { 'aria-describedby': 'job-exports-hint' }, h('legend', {}, t('jobs.exports')), boxes,
    h('p', { class: 'hint', id: 'job-exports-hint' }, t('jobs.exportsHint')))];
}

// The body POST /v1/jobs takes, from the form: empty numbers are left to the API's defaults,
// and whatever the API refuses comes back as its 422 message.
function jobRequest(form, dataset) {
  const spec = TASK_FORMS[dataset.task];
  const params = {};
  for (const name of Object.keys(spec.choices)) params[name] = form.elements[name].value;
  for (const name of Object.keys(spec.numbers)) {
    const raw = form.elements[name].value.trim();
    if (raw !== '') params[name] = Number(raw);
  }
  const request = { type: 'train', task: dataset.task, dataset_id: dataset.id, model_name: form.elements.model_name.value.trim(), params };
  const description = form.elements.description.value.trim();
  if (description) request.description = description;
  const webhook = form.elements.webhook_url.value.trim();
  if (webhook) request.webhook_url = webhook;
  if (spec.exports) request.exports = [...form.querySelectorAll('input[name="exports"]:checked')].map((box) => box.value);
  return request;
}

function newJobForm(allDatasets, life) {
  const datasets = allDatasets.filter((d) => d.task in TASK_FORMS);  // what POST /v1/jobs trains
  const section = h('section', { class: 'panel', 'aria-labelledby': 'new-job-title' }, h('h2', { id: 'new-job-title' }, t('jobs.new')));
  if (!datasets.length) {
    section.append(alertBox('info', t('jobs.noDatasets')), h('a', { class: 'button', href: '#/datasets' }, t('jobs.uploadFirst')));
    return section;
  }
  const byId = new Map(datasets.map((d) => [d.id, d]));
  const select = h('select', { id: 'job-dataset', name: 'dataset_id', required: true },
    datasets.map((d) => h('option', { value: d.id }, `${d.name} (${d.task}, ${d.image_count})`)));
  const modelName = h('input', { id: 'job-model-name', name: 'model_name', required: true, maxlength: '200', autocomplete: 'off', style: WIDE });
  let nameTyped = false;
  modelName.addEventListener('input', () => { nameTyped = modelName.value !== ''; });
  const paramsTitle = h('legend', {});
  const paramsBox = h('div');
  const endpoints = h('datalist', { id: 'job-webhook-endpoints' });
  const submit = h('button', { type: 'submit' }, t('jobs.start'));
  const status = h('div', { 'aria-live': 'polite' });

  function datasetChosen() {
    const dataset = byId.get(select.value);
    paramsTitle.textContent = t('jobs.params', { task: dataset.task });
    paramsBox.replaceChildren(...parameterFields(dataset.task));
    if (!nameTyped) modelName.value = `${dataset.name}-${dataset.task}`;
  }
  select.addEventListener('change', datasetChosen);

  const form = h('form', { novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    submit.textContent = t('jobs.starting');
    status.replaceChildren();
    try {
      const created = await api('/v1/jobs', { json: jobRequest(form, byId.get(select.value)), signal: life.signal });
      location.hash = `#/jobs/${encodeURIComponent(created.id)}`;
    } catch (error) {
      if (error.name !== 'AbortError') showError(status, error);
    } finally {
      submit.disabled = false;
      submit.textContent = t('jobs.start');
    }
  } },
  field('job-dataset', t('jobs.dataset'), select),
  field('job-model-name', t('jobs.modelName'), modelName),
  field('job-description', t('jobs.description'), h('input', { id: 'job-description', name: 'description', maxlength: '2000', style: WIDE })),
  h('fieldset', {}, paramsTitle, paramsBox),
  field('job-webhook-url', t('jobs.webhook'),
    h('input', { id: 'job-webhook-url', name: 'webhook_url', type: 'url', inputmode: 'url', list: 'job-webhook-endpoints', autocomplete: 'off', placeholder: 'https://', style: WIDE }),
    t('jobs.webhookHint')),
  endpoints, submit, status);
  datasetChosen();
  // Registered endpoints are offered as suggestions; the form works without them.
  api('/v1/webhook-endpoints', { signal: life.signal })
    .then(({ items }) => endpoints.replaceChildren(...items.filter((e) => e.status === 'enabled').map((e) => h('option', { value: e.url }))))
    .catch((error) => { if (error.name !== 'AbortError') console.warn(error); });
  section.append(form);
  return section;
}

// ---------------------------------------------------------------- one job

function describeParams(params) {
  return Object.entries(params ?? {})
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([name, value]) => `${name} ${Array.isArray(value) ? value.join(', ') : value}`)
    .join(' · ');
}

// The progress of a training job, from the job and its epochs: "epoch k of N", a bar, the time
// left (mean epoch duration so far × epochs left) and the last epoch's duration.
function progressView(job, epochs) {
  const durations = epochs.map((e) => e.duration_seconds).filter((d) => typeof d === 'number');
  const last = durations.length ? durations[durations.length - 1] : job.last_epoch_duration_seconds;
  const done = Math.max(job.current_epoch, epochs.length ? epochs[epochs.length - 1].epoch : 0);
  const lines = [];
  if (job.type === 'infer') {
    const unit = job.progress_unit ?? '';
    lines.push(h('p', { class: 'progress-text' }, job.progress_total
      ? t('job.workOf', { k: job.progress_done, n: job.progress_total, unit })
      : t('job.work', { k: job.progress_done, unit })));
    if (job.progress_total) lines.push(h('progress', { class: 'progress', max: String(job.progress_total), value: String(job.progress_done), 'aria-label': t('job.progress') }));
  } else {
    lines.push(h('p', { class: 'progress-text' }, done ? t('job.epochOf', { k: done, n: job.epochs }) : t('job.waiting')));
    lines.push(h('progress', { class: 'progress', max: String(job.epochs), value: String(done), 'aria-label': t('job.progress') }));
    if (!TERMINAL.has(job.status)) {
      const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null;
      lines.push(h('p', { class: 'eta' }, mean === null ? t('job.etaUnknown') : t('job.eta', { eta: formatDuration(mean * Math.max(0, job.epochs - done)) })));
    }
    if (typeof last === 'number') lines.push(h('p', {}, t('job.lastEpoch', { duration: formatDuration(last) })));
  }
  if (TERMINAL.has(job.status) && job.started_at) lines.push(h('p', {}, t('job.took', { duration: formatDuration(seconds(job.started_at, job.finished_at)) })));
  if (job.status === 'FAILED') lines.push(alertBox('error', t('job.failed', { error: job.error ?? '—' })));
  if (job.status === 'CANCELLED') lines.push(alertBox('info', t('job.cancelled')));
  return lines;
}

// Live regions are announced when they change: polling leaves a region alone unless its
// content does (which also keeps the focus on a link inside it).
function replaceIfChanged(container, nodes) {
  const next = h('div', {}, nodes);
  if (next.innerHTML !== container.innerHTML) container.replaceChildren(...next.childNodes);
}

// The name to show beside an id; a dataset or model deleted since leaves the id alone.
async function nameOf(path, signal) {
  try {
    return (await api(path, { signal })).name;
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

// `names` holds the dataset's and the model's names (read once); their ids where unknown.
function factsView(job, names) {
  const modelText = names.model ? `${names.model} (${job.model_id})` : job.model_id;
  const datasetText = names.dataset ? `${names.dataset} (${job.dataset_id})` : job.dataset_id;
  const modelLink = h('a', { href: `#/models/${encodeURIComponent(job.model_id)}` }, modelText);
  const rows = [
    ['job.task', taskLabel(job)],
    ['job.dataset', job.dataset_id ? h('a', { href: `#/datasets/${encodeURIComponent(job.dataset_id)}` }, datasetText) : '—'],
    [job.type === 'infer' ? 'job.usedModel' : 'job.model', job.type === 'infer' || job.status === 'SUCCEEDED' ? modelLink : modelText],
    ['job.created', formatDate(job.created_at)],
    ['job.started', formatDate(job.started_at)],
    ['job.finished', formatDate(job.finished_at)],
    ['job.params', describeParams(job.params) || '—'],
    ['job.webhookUrl', job.webhook_url ?? '—'],
  ];
  return h('dl', { class: 'facts' }, rows.flatMap(([label, value]) => [h('dt', {}, t(label)), h('dd', { style: 'overflow-wrap:anywhere' }, value)]));
}

// The metric charts: losses on one, the other reported scores on another. A chart is made when
// its metrics first appear and then only gains points.
function metricCharts(container, job) {
  const charts = new Map();  // group → {chart, keys}
  let seen = 0;
  const group = (key) => (key.includes('loss') ? 'loss' : 'score');

  function chartFor(name, keys, epochs) {
    const current = charts.get(name);
    if (current && current.keys.join() === keys.join()) return current.chart;
    // a metric appeared that the chart lacks: make it again with every epoch so far
    const chart = lineChart({
      title: t(`chart.${name}`), description: t(`chart.${name}Desc`), xLabel: t('job.epoch'), yLabel: name === 'loss' ? 'loss' : t('metric.value'),
      series: keys.map((key) => ({ key, label: t(`metric.${key}`), dashed: key.startsWith('val_') })), xMax: job.epochs,
    });
    for (const epoch of epochs) chart.add(epoch.epoch, epoch);
    if (current) current.chart.element.replaceWith(chart.element);
    else container.append(chart.element);
    charts.set(name, { chart, keys });
    return chart;
  }

  return function update(epochs) {
    if (!epochs.length || epochs.length === seen) return;
    const keys = [...new Set(epochs.flatMap((e) => Object.keys(e).filter((k) => !NOT_CHARTED.has(k) && typeof e[k] === 'number')))];
    if (!seen) container.replaceChildren();
    for (const name of ['loss', 'score']) {
      const own = keys.filter((key) => group(key) === name).sort();
      if (!own.length) continue;
      const chart = chartFor(name, own, epochs.slice(0, seen));
      for (const epoch of epochs.slice(seen)) chart.add(epoch.epoch, epoch);
    }
    seen = epochs.length;
  };
}

function deliveryView(delivery, jobId, onRedelivered) {
  const attempts = delivery.attempt_log.length
    ? h('ol', { class: 'attempts' }, delivery.attempt_log.map((entry) => h('li', {}, t('webhooks.attempt', {
      series: entry.series ?? 1, attempt: entry.attempt, at: formatDate(entry.at), ms: entry.duration_ms ?? '—',
      result: entry.status_code ? t('webhooks.http', { code: entry.status_code }) + (entry.error ? ` — ${entry.error}` : '') : (entry.error ?? '—'),
    }))))
    : h('p', { class: 'hint' }, t('webhooks.noAttempt'));
  const redeliver = h('button', { type: 'button', class: 'secondary', disabled: delivery.status === 'pending' },
    t('webhooks.redeliver', { event: delivery.event_type }));
  redeliver.addEventListener('click', async () => {
    redeliver.disabled = true;
    try {
      await api(`/v1/jobs/${encodeURIComponent(jobId)}/webhooks/${encodeURIComponent(delivery.id)}/redeliver`, { method: 'POST' });
      onRedelivered(null);
    } catch (error) {
      onRedelivered(error);
      redeliver.disabled = false;
    }
  });
  return h('li', { class: 'delivery panel', dataset: { deliveryId: delivery.id } },
    h('p', {}, h('strong', {}, delivery.event_type), ' ', badge(delivery.status), ' → ', h('code', { style: 'overflow-wrap:anywhere' }, delivery.url)),
    attempts, redeliver);
}

async function download(url, name, signal) {
  const blob = await api(url, { as: 'blob', signal });
  const link = h('a', { href: URL.createObjectURL(blob), download: name });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// An inference job's results: its counts, a download per file (fetched with the key, since the
// routes need it) and the preview video or image.
async function resultsView(container, job, life) {
  const result = await api(`/v1/jobs/${encodeURIComponent(job.id)}/results`, { signal: life.signal });
  const objectUrls = [];
  life.signal.addEventListener('abort', () => objectUrls.forEach((u) => URL.revokeObjectURL(u)));
  const shown = (value) => (typeof value === 'number' ? formatNumber(value) : String(value ?? '—'));
  // counts may be grouped one level deep, e.g. frames: {total, predicted}
  const counts = Object.entries(result).filter(([name]) => !['files', 'downloads', 'job_id', 'model_id'].includes(name))
    .map(([name, value]) => [name, value !== null && typeof value === 'object'
      ? Object.entries(value).filter(([, v]) => v === null || typeof v !== 'object').map(([k, v]) => `${k} ${shown(v)}`).join(' · ')
      : shown(value)]);
  const status = h('div', { 'aria-live': 'polite' });
  container.append(
    h('dl', { class: 'facts' }, counts.flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)])),
    h('h3', {}, t('results.downloads')),
    h('ul', {}, Object.entries(result.downloads).map(([kind, url]) => h('li', {},
      h('button', { type: 'button', class: 'secondary', onclick: () => download(url, `${job.id}-${result.files[kind]}`, life.signal).catch((error) => showError(status, error)) },
        t('results.download', { kind }))))),
    status);
  for (const [kind, make] of [
    ['preview_video', (src) => h('video', { controls: true, src, 'aria-label': t('results.video'), style: 'max-width:100%' })],
    ['preview_image', (src) => h('img', { src, alt: t('results.image'), style: 'max-width:100%' })],
  ]) {
    if (!result.downloads[kind]) continue;
    const src = URL.createObjectURL(await api(result.downloads[kind], { as: 'blob', signal: life.signal }));
    objectUrls.push(src);
    container.append(h('figure', { style: 'margin:0 0 1rem' }, make(src), h('figcaption', { class: 'hint' }, t(kind === 'preview_video' ? 'results.video' : 'results.image'))));
  }
}

async function renderJob(main, { id }, life) {
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let job = await api(path, { signal: life.signal });
  const [datasetName, modelName] = await Promise.all([
    job.dataset_id ? nameOf(`/v1/datasets/${encodeURIComponent(job.dataset_id)}`, life.signal) : null,
    nameOf(`/v1/models/${encodeURIComponent(job.model_id)}`, life.signal),
  ]);
  const names = { dataset: datasetName, model: modelName };
  let epochs = [];
  let deliveriesSeen = '';
  let endedAt = null;
  let watchDeliveries = true;

  const heading = h('h1', {}, t('job.title', { id }));
  const statusLine = h('p', { role: 'status' });
  const facts = h('div');
  const progress = h('div', { 'aria-live': 'polite', 'aria-atomic': 'true' });
  const actions = h('div', { class: 'actions' });
  const modelLink = h('p', { hidden: true }, h('a', { class: 'button', href: `#/models/${encodeURIComponent(job.model_id)}` }, t('job.openModel')));
  const chartsBox = h('div', { class: 'grid' }, h('p', { class: 'hint' }, t('job.noMetrics')));
  const deliveries = h('ul', { style: 'list-style:none; padding:0; margin:0' });
  const webhookStatus = h('div', { 'aria-live': 'polite' });
  const results = h('section', { class: 'panel', 'aria-labelledby': 'job-results-title', hidden: true }, h('h2', { id: 'job-results-title' }, t('results.title')));
  const updateCharts = metricCharts(chartsBox, job);

  main.append(...[
    h('p', {}, h('a', { href: '#/jobs' }, `← ${t('job.back')}`)),
    heading, statusLine,
    h('section', { class: 'panel', 'aria-labelledby': 'job-progress-title' }, h('h2', { id: 'job-progress-title' }, t('job.progress')), progress, actions, modelLink),
    job.type === 'train' ? h('section', { class: 'panel', 'aria-labelledby': 'job-charts-title' }, h('h2', { id: 'job-charts-title' }, t('job.charts')), chartsBox) : null,
    results,
    h('section', { class: 'panel', 'aria-labelledby': 'job-facts-title' }, h('h2', { id: 'job-facts-title' }, t('job.facts')), facts),
    h('section', { class: 'panel', 'aria-labelledby': 'job-webhooks-title' }, h('h2', { id: 'job-webhooks-title' }, t('webhooks.title')), webhookStatus, deliveries),
  ].filter(Boolean));

  const cancelButton = h('button', { type: 'button', class: 'danger' }, t('job.cancel'));
  const yes = h('button', { type: 'button', class: 'danger' }, t('job.confirmYes'));
  const no = h('button', { type: 'button', class: 'secondary' }, t('job.confirmNo'));
  const confirmBox = h('div', { role: 'group', 'aria-label': t('job.cancel'), hidden: true },
    h('p', {}, t('job.confirmCancel')), h('div', { style: 'display:flex; flex-wrap:wrap; gap:.5rem' }, yes, no));
  const cancelStatus = h('div', { 'aria-live': 'assertive' });
  actions.append(cancelButton, confirmBox, cancelStatus);
  cancelButton.addEventListener('click', () => { cancelButton.hidden = true; confirmBox.hidden = false; yes.focus(); });
  no.addEventListener('click', () => { confirmBox.hidden = true; cancelButton.hidden = false; cancelButton.focus(); });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      show(await api(`${path}/cancel`, { method: 'POST', signal: life.signal }));
      await refreshDeliveries();
    } catch (error) {
      if (error.name !== 'AbortError') showError(cancelStatus, error);
    } finally {
      yes.disabled = false;
    }
  });

  function show(fresh) {
    const wasTerminal = TERMINAL.has(job.status);
    job = fresh;
    replaceIfChanged(statusLine, [`${t('job.status')}: `, badge(job.status)]);
    replaceIfChanged(facts, [factsView(job, names)]);
    replaceIfChanged(progress, progressView(job, epochs));
    const over = TERMINAL.has(job.status);
    actions.hidden = over;
    if (over && !endedAt) endedAt = Date.now();
    modelLink.hidden = !(job.type === 'train' && job.status === 'SUCCEEDED');
    if (over && !wasTerminal && job.type === 'infer' && job.status === 'SUCCEEDED') showResults();
  }

  function showResults() {
    results.hidden = false;
    resultsView(results, job, life).catch((error) => { if (life.alive && error.name !== 'AbortError') results.append(alertBox('error', error.message)); });
  }

  async function refreshDeliveries() {
    const { items } = await api(`${path}/webhooks`, { signal: life.signal });
    const seen = JSON.stringify(items);
    if (seen !== deliveriesSeen) {
      deliveriesSeen = seen;
      deliveries.replaceChildren(...items.map((delivery) => deliveryView(delivery, job.id, (error) => {
        if (error) { showError(webhookStatus, error); return; }
        webhookStatus.replaceChildren(alertBox('success', t('webhooks.redelivered')));
        watchDeliveries = true;
        refreshDeliveries().catch((failure) => { if (failure.name !== 'AbortError') showError(webhookStatus, failure); });
      })));
    }
    if (!items.length) webhookStatus.replaceChildren(h('p', { class: 'hint' }, job.webhook_url ? t('webhooks.none') : t('webhooks.noUrl')));
    else if (webhookStatus.querySelector('.hint')) webhookStatus.replaceChildren();
    // read again while the job runs, while a delivery is pending, or while its first may still come
    const awaitingFirst = job.webhook_url && !items.length && Date.now() - (endedAt ?? Date.now()) < WEBHOOK_SETTLE_MS;
    watchDeliveries = !TERMINAL.has(job.status) || items.some((d) => d.status === 'pending') || Boolean(awaitingFirst);
  }

  async function refreshMetrics() {
    if (job.type !== 'train') return;
    epochs = (await api(`${path}/metrics`, { signal: life.signal })).epochs;
    updateCharts(epochs);
  }

  await refreshMetrics();
  show(job);
  if (job.status === 'SUCCEEDED' && job.type === 'infer') showResults();
  await refreshDeliveries();

  life.every(POLL_MS, async () => {
    if (!TERMINAL.has(job.status)) {
      const fresh = await api(path, { signal: life.signal });
      await refreshMetrics();  // after the job: its epochs are at least as far as it says
      show(fresh);
    }
    if (watchDeliveries) await refreshDeliveries();
  });
}

register('#/jobs', renderList, { title: 'jobs.title' });
register('#/jobs/:id', renderJob, { title: 'jobs.title' });
