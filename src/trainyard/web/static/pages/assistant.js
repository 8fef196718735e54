// The assistant: a question, optionally about one of the user's recent jobs, answered through
// POST /v1/assistant by the OpenAI-compatible chat API the operator configured. The chosen
// job's record (status, error, parameters, metrics, dataset) goes with the question, so "why
// did my job fail?" is answered from it. Unconfigured, the API's 503 message says how to set
// it up, and the page shows that message as it is. `#/assistant/<job id>` preselects a job.
import { ApiError, addMessages, alertBox, api, formatDate, h, register, showError, t } from '../core.js';

const MAX_QUESTION = 4000;  // POST /v1/assistant's cap
const RECENT_JOBS = 50;

addMessages({
  en: {
    'assistant.title': 'Assistant',
    'assistant.intro': 'Ask about training models with Trainyard. Pick one of your jobs and its record (status, error, parameters, metrics) is given to the assistant with your question.',
    'assistant.question': 'Your question', 'assistant.placeholder': 'Why did my job fail?',
    'assistant.job': 'About a job (optional)', 'assistant.noJob': 'No job: a general question',
    'assistant.jobOption': '{status} · {task} · {id} · {date}', 'assistant.jobError': 'Error: {error}',
    'assistant.ask': 'Ask', 'assistant.thinking': 'The assistant is thinking…', 'assistant.answer': 'Answer',
    'assistant.notConfigured': 'The assistant is not set up on this Trainyard yet.', 'assistant.jobsUnavailable': 'Your jobs could not be listed: {message}',
  },
  fr: {
    'assistant.title': 'Assistance',
    'assistant.intro': 'Posez vos questions sur l’entraînement de modèles avec Trainyard. Choisissez une de vos tâches : sa fiche (état, erreur, paramètres, métriques) est donnée à l’assistant avec votre question.',
    'assistant.question': 'Votre question', 'assistant.placeholder': 'Pourquoi ma tâche a-t-elle échoué ?',
    'assistant.job': 'À propos d’une tâche (facultatif)', 'assistant.noJob': 'Aucune tâche : une question générale',
    'assistant.jobOption': '{status} · {task} · {id} · {date}', 'assistant.jobError': 'Erreur : {error}',
    'assistant.ask': 'Demander', 'assistant.thinking': 'L’assistant réfléchit…', 'assistant.answer': 'Réponse',
    'assistant.notConfigured': 'L’assistant n’est pas encore configuré sur ce Trainyard.', 'assistant.jobsUnavailable': 'Vos tâches n’ont pas pu être listées : {message}',
  },
});

document.head.append(h('style', {}, `
  .assistant-page textarea { width: 100%; min-height: 6rem; }
  .assistant-page select { width: 100%; }
  .assistant-page .answer { white-space: pre-wrap; margin: 0; }
  .assistant-page .answer, .assistant-page .hint { overflow-wrap: anywhere; }  /* errors quote long file names */
`));

async function assistantPage(main, { job: preselected }, life) {
  const question = h('textarea', { id: 'assistant-question', name: 'question', required: true, maxlength: String(MAX_QUESTION),
    placeholder: t('assistant.placeholder'), rows: '4' });
  const jobSelect = h('select', { id: 'assistant-job', name: 'job_id', 'aria-describedby': 'assistant-job-error' },
    h('option', { value: '' }, t('assistant.noJob')));
  const jobError = h('p', { class: 'hint', id: 'assistant-job-error' });
  const submit = h('button', { type: 'submit' }, t('assistant.ask'));
  const answer = h('div', { 'aria-live': 'polite' });
  const jobsById = new Map();

  const showJobError = () => {
    const job = jobsById.get(jobSelect.value);
    jobError.textContent = job?.error ? t('assistant.jobError', { error: job.error }) : '';
  };
  jobSelect.addEventListener('change', showJobError);

  async function ask(event) {
    event.preventDefault();
    submit.disabled = true;
    answer.replaceChildren(h('p', {}, t('assistant.thinking')), h('progress', { class: 'progress', 'aria-label': t('assistant.thinking') }));
    try {
      const body = { question: question.value, ...(jobSelect.value ? { job_id: jobSelect.value } : {}) };
      const reply = await api('/v1/assistant', { json: body, signal: life.signal });
      answer.replaceChildren(h('section', { class: 'panel', 'aria-labelledby': 'assistant-answer' },
        h('h2', { id: 'assistant-answer' }, t('assistant.answer')), h('p', { class: 'answer' }, reply.answer)));
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error instanceof ApiError && error.status === 503) {
        answer.replaceChildren(alertBox('info', t('assistant.notConfigured')), alertBox('info', error.message));
      } else {
        showError(answer, error);
      }
    } finally {
      submit.disabled = false;
    }
  }

  main.append(h('div', { class: 'assistant-page' },
    h('h1', {}, t('assistant.title')),
    h('p', { class: 'hint' }, t('assistant.intro')),
    h('form', { class: 'panel', onsubmit: ask },
      h('div', { class: 'field' }, h('label', { for: 'assistant-question' }, t('assistant.question')), question),
      h('div', { class: 'field' }, h('label', { for: 'assistant-job' }, t('assistant.job')), jobSelect, jobError),
      submit),
    answer));

  try {
    const jobs = await api(`/v1/jobs?limit=${RECENT_JOBS}`, { signal: life.signal });
    for (const job of jobs.items) {
      jobsById.set(job.id, job);
      jobSelect.append(h('option', { value: job.id }, t('assistant.jobOption', {
        status: t(`status.${job.status}`), task: job.task, id: job.id, date: formatDate(job.created_at),
      })));
    }
    if (preselected && jobsById.has(preselected)) jobSelect.value = preselected;
    showJobError();
  } catch (error) {
    if (error.name !== 'AbortError') jobError.textContent = t('assistant.jobsUnavailable', { message: error.message });
  }
}

register('#/assistant', (main, _params, life) => assistantPage(main, {}, life), { title: 'assistant.title' });
register('#/assistant/:job', assistantPage, { title: 'assistant.title' });
