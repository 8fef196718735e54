// Handwritten digits (seed 004, docs/seeds/004.md), the seed's two pages on its own routes:
// - #/digits: draw a digit (mouse, pen or finger: pointer events) and POST /seeds/004/predict
//   the canvas as a data URL; the answer's `prediction` is the digit, or a sentence (empty
//   drawing, no model yet) shown as it is. A picture of a digit can be sent instead, which is
//   also the keyboard's way in.
// - #/digits/train: two CSV files and a number of epochs, POST /seeds/004/training. The route
//   answers a short HTML message: <p class="success" data-accuracy>, <p class="error">, or
//   <p class="pending" data-job-id> when it stopped waiting for the job (on AWS after 20 s);
//   then the page follows the job on /v1/jobs/<id> and shows its accuracy when it ends.
// The seed was French: its labels are here in French too.
import { addMessages, alertBox, api, badge, formatDuration, h, register, showError, sleep, t } from '../core.js';

const SEED = '/seeds/004';
const SIDE = 280;  // the canvas's pixels; the route makes it MNIST's 28x28
const STROKE = 18;
const POLL_MS = 1500;
const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

addMessages({
  en: {
    'digits.title': 'Draw a digit', 'digits.intro': 'Draw one digit, 0 to 9, as large as the square, then ask the model which it is.',
    'digits.canvas': 'Drawing area: draw a digit here with the mouse, a pen or a finger',
    'digits.predict': 'Predict', 'digits.clear': 'Clear', 'digits.predicting': 'Predicting…',
    'digits.result': 'Prediction', 'digits.predicted': 'The model reads: {digit}',
    'digits.picture': 'Or send a picture of a digit', 'digits.pictureHint': 'A dark digit on a light background, or the reverse.',
    'digits.toTrain': 'Train the digit model from CSV files',
    'digits.trainTitle': 'Train the digit model',
    'digits.trainIntro': 'Two CSV files in MNIST’s layout: each row the label 0–9, then 784 pixels 0–255 (28×28, row by row); a header row is allowed.',
    'digits.file1': 'Training set (CSV)', 'digits.file2': 'Test set (CSV)', 'digits.epochs': 'Epochs',
    'digits.epochsHint': 'How many times training goes through the training set: 1 to 500.',
    'digits.train': 'Train', 'digits.sending': 'Sending the files and training…',
    'digits.waiting': 'Training: the answer comes when the job has finished ({elapsed}).',
    'digits.accuracy': 'Accuracy on the test set: {accuracy}',
    'digits.pending': 'Training is still running: following job {id}.', 'digits.job': 'Job {id}',
    'digits.progress': 'Epoch {epoch} of {epochs}', 'digits.jobFailed': 'Training failed: {error}',
    'digits.jobCancelled': 'Training was cancelled.', 'digits.model': 'The model', 'digits.toDraw': 'Draw a digit to try it',
  },
  fr: {
    'digits.title': 'Dessinez un chiffre', 'digits.intro': 'Dessinez un chiffre, de 0 à 9, aussi grand que le carré, puis demandez au modèle lequel c’est.',
    'digits.canvas': 'Zone de dessin : dessinez un chiffre ici à la souris, au stylet ou au doigt',
    'digits.predict': 'Prédire', 'digits.clear': 'Effacer', 'digits.predicting': 'Prédiction…',
    'digits.result': 'Prédiction', 'digits.predicted': 'Le modèle lit : {digit}',
    'digits.picture': 'Ou envoyez la photo d’un chiffre', 'digits.pictureHint': 'Un chiffre sombre sur fond clair, ou l’inverse.',
    'digits.toTrain': 'Entraîner le modèle de chiffres à partir de fichiers CSV',
    'digits.trainTitle': 'Entraîner le modèle',
    'digits.trainIntro': 'Deux fichiers CSV au format de MNIST : chaque ligne donne l’étiquette 0–9, puis 784 pixels 0–255 (28×28, ligne par ligne) ; une ligne d’en-tête est permise.',
    'digits.file1': 'Jeu d’entraînement (CSV)', 'digits.file2': 'Jeu de test (CSV)', 'digits.epochs': 'Nombre d’époques',
    'digits.epochsHint': 'Combien de fois l’entraînement parcourt le jeu d’entraînement : de 1 à 500.',
    'digits.train': 'Entraîner', 'digits.sending': 'Envoi des fichiers et entraînement…',
    'digits.waiting': 'Entraînement : la réponse arrive quand la tâche est terminée ({elapsed}).',
    'digits.accuracy': 'Précision sur le jeu de test : {accuracy}',
    'digits.pending': 'L’entraînement continue : suivi de la tâche {id}.', 'digits.job': 'Tâche {id}',
    'digits.progress': 'Époque {epoch} sur {epochs}', 'digits.jobFailed': 'L’entraînement a échoué : {error}',
    'digits.jobCancelled': 'L’entraînement a été annulé.', 'digits.model': 'Le modèle', 'digits.toDraw': 'Dessiner un chiffre pour l’essayer',
  },
});

document.head.append(h('style', {}, `
  .digits-page canvas.drawing { width: min(${SIDE}px, 100%); aspect-ratio: 1; touch-action: none; background: #fff;
    border: 2px solid var(--muted); border-radius: 6px; cursor: crosshair; display: block; }
  .digits-page .row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .75rem 0; }
  .digits-page .digit { font-size: 4rem; font-weight: 700; line-height: 1; margin: .25rem 0; }
  .digits-page .layout { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 1.5rem; align-items: start; }
  @media (max-width: 700px) { .digits-page .layout { grid-template-columns: minmax(0, 1fr); } }
`));

function percent(value) {
  return `${(value * 100).toFixed(2)} %`;
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A white square to draw on in black: strokes follow the pointer while it is down.
function drawingCanvas() {
  const canvas = h('canvas', { class: 'drawing', width: String(SIDE), height: String(SIDE), role: 'img', 'aria-label': t('digits.canvas') });
  const ctx = canvas.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, SIDE, SIDE);
  };
  clear();
  ctx.lineWidth = STROKE;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.strokeStyle = '#000';
  let drawing = null;  // the pointer drawing now
  const at = (event) => {
    const box = canvas.getBoundingClientRect();  // the canvas may be shown smaller than its pixels
    return [(event.clientX - box.left) * (SIDE / box.width), (event.clientY - box.top) * (SIDE / box.height)];
  };
  canvas.addEventListener('pointerdown', (event) => {
    event.preventDefault();
    drawing = event.pointerId;
    canvas.setPointerCapture(event.pointerId);
    const [x, y] = at(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y);  // a tap leaves a dot
    ctx.stroke();
  });
  canvas.addEventListener('pointermove', (event) => {
    if (drawing !== event.pointerId) return;
    const [x, y] = at(event);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  for (const end of ['pointerup', 'pointercancel']) {
    canvas.addEventListener(end, (event) => {
      if (drawing === event.pointerId) drawing = null;
    });
  }
  return { canvas, clear };
}

register('#/digits', (main, _params, life) => {
  const { canvas, clear } = drawingCanvas();
  const result = h('div', { class: 'result', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const predictButton = h('button', { type: 'button' }, t('digits.predict'));

  async function predict(image) {
    predictButton.disabled = true;
    result.replaceChildren(h('p', {}, t('digits.predicting')));
    try {
      const { prediction } = await api(`${SEED}/predict`, { json: { image }, signal: life.signal });
      result.replaceChildren(typeof prediction === 'number'
        ? h('div', {}, h('p', { class: 'digit', 'data-digit': String(prediction), 'aria-hidden': 'true' }, String(prediction)),
          h('p', {}, t('digits.predicted', { digit: prediction })))
        : alertBox('info', String(prediction)));
    } catch (error) {
      if (error.name !== 'AbortError') showError(result, error);
    } finally {
      predictButton.disabled = false;
    }
  }

  predictButton.addEventListener('click', () => predict(canvas.toDataURL('image/png')));
  const picture = h('input', { id: 'digit-picture', type: 'file', accept: 'image/*', 'aria-describedby': 'digit-picture-hint',
    onchange: async () => {
      const [file] = picture.files;
      if (file) await predict(await readAsDataURL(file));
      picture.value = '';
    } });

  main.append(h('div', { class: 'digits-page' },
    h('h1', {}, t('digits.title')),
    h('p', { class: 'hint' }, t('digits.intro')),
    h('div', { class: 'layout' },
      h('section', { class: 'panel', 'aria-label': t('digits.canvas') }, canvas,
        h('div', { class: 'row' }, predictButton,
          h('button', { type: 'button', class: 'secondary', onclick: () => { clear(); result.replaceChildren(); } }, t('digits.clear'))),
        h('label', { for: 'digit-picture' }, t('digits.picture')), picture,
        h('p', { class: 'hint', id: 'digit-picture-hint' }, t('digits.pictureHint'))),
      h('section', { class: 'panel', 'aria-labelledby': 'digit-result' },
        h('h2', { id: 'digit-result' }, t('digits.result')), result,
        h('p', {}, h('a', { href: '#/digits/train' }, t('digits.toTrain')))))));
}, { title: 'digits.title' });

register('#/digits/train', (main, _params, life) => {
  const file1 = h('input', { id: 'digits-file1', name: 'file1', type: 'file', accept: '.csv,text/csv', required: true });
  const file2 = h('input', { id: 'digits-file2', name: 'file2', type: 'file', accept: '.csv,text/csv', required: true });
  const epochs = h('input', { id: 'digits-epochs', name: 'epoch', type: 'number', min: '1', max: '500', step: '1', value: '5',
    required: true, 'aria-describedby': 'digits-epochs-hint' });
  const submit = h('button', { type: 'submit' }, t('digits.train'));
  const status = h('div', { 'aria-live': 'polite' });

  const succeeded = (accuracy, jobId, modelId) => status.replaceChildren(
    alertBox('success', t('digits.accuracy', { accuracy: percent(accuracy) })),
    h('p', { class: 'row' },
      h('a', { href: `#/jobs/${encodeURIComponent(jobId)}` }, t('digits.job', { id: jobId })),
      modelId && h('a', { href: `#/models/${encodeURIComponent(modelId)}` }, t('digits.model')),
      h('a', { href: '#/digits' }, t('digits.toDraw'))));

  // The route stopped waiting: follow the job until it ends.
  async function follow(jobId) {
    const line = h('p', {}, t('digits.pending', { id: jobId }), ' ',
      h('a', { href: `#/jobs/${encodeURIComponent(jobId)}` }, t('digits.job', { id: jobId })));
    const progress = h('progress', { class: 'progress', 'aria-label': t('digits.trainTitle') });
    const state = h('p', {});
    status.replaceChildren(line, progress, state);
    for (;;) {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal: life.signal });
      if (job.status === 'SUCCEEDED') { succeeded(job.val_accuracy, job.id, job.model_id); return; }
      if (job.status === 'FAILED') { status.replaceChildren(alertBox('error', t('digits.jobFailed', { error: job.error ?? '' }))); return; }
      if (job.status === 'CANCELLED') { status.replaceChildren(alertBox('error', t('digits.jobCancelled'))); return; }
      if (job.epochs) {
        progress.max = job.epochs;
        progress.value = job.current_epoch ?? 0;
      }
      state.replaceChildren(badge(job.status), ' ', t('digits.progress', { epoch: job.current_epoch ?? 0, epochs: job.epochs }));
      await sleep(POLL_MS);
      if (!life.alive) return;
    }
  }

  async function train(event) {
    event.preventDefault();
    const form = new FormData();
    form.append('file1', file1.files[0]);
    form.append('file2', file2.files[0]);
    form.append('epoch', epochs.value);
    submit.disabled = true;
    const started = Date.now();
    const waiting = h('p', {}, t('digits.sending'));
    status.replaceChildren(waiting, h('progress', { class: 'progress', 'aria-label': t('digits.trainTitle') }));
    const clock = setInterval(() => {
      waiting.textContent = t('digits.waiting', { elapsed: formatDuration((Date.now() - started) / 1000) });
    }, 1000);
    try {
      const response = await api(`${SEED}/training`, { form, as: 'response', signal: life.signal });
      clearInterval(clock);
      const answer = new DOMParser().parseFromString(await response.text(), 'text/html').querySelector('p');
      if (answer?.classList.contains('success')) {
        succeeded(Number(answer.dataset.accuracy), answer.dataset.jobId, answer.dataset.modelId);
      } else if (answer?.classList.contains('pending')) {
        await follow(answer.dataset.jobId);
      } else {
        status.replaceChildren(alertBox('error', answer?.textContent.trim() || `${response.status} ${response.statusText}`));
      }
    } catch (error) {
      if (error.name !== 'AbortError') showError(status, error);
    } finally {
      clearInterval(clock);
      submit.disabled = false;
    }
  }

  const field = (input, labelKey, ...extra) => h('div', { class: 'field' }, h('label', { for: input.id }, t(labelKey)), input, ...extra);
  main.append(h('div', { class: 'digits-page' },
    h('h1', {}, t('digits.trainTitle')),
    h('p', { class: 'hint' }, t('digits.trainIntro')),
    h('form', { class: 'panel', onsubmit: train },
      field(file1, 'digits.file1'), field(file2, 'digits.file2'),
      field(epochs, 'digits.epochs', h('p', { class: 'hint', id: 'digits-epochs-hint' }, t('digits.epochsHint'))),
      submit, status)));
}, { title: 'digits.trainTitle' });
