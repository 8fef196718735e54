"""The assistant: questions answered by the configured OpenAI-compatible chat API
(`TRAINYARD_CHAT_API_URL`, `_KEY`, `_MODEL`, `_TIMEOUT_SECONDS`).

Two callers share one client: seed 004's `GET /model` forwards a bare question, as the seed's
page did, and the console's `POST /v1/assistant` adds the user's chosen job as a system
message (status, error, parameters, per-epoch metrics, dataset), so that "why did my job
fail?" is answered from the job's record rather than guessed. The job is read through the
job and dataset services with the caller's tenant, so another tenant's job is not found.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..domain import Dataset, EpochMetrics, Job
from ..errors import InvalidInput, NotFound, Unavailable
from . import outbound
from .jobs import public_job

if TYPE_CHECKING:
    from ..settings import Settings
    from .datasets import DatasetService
    from .jobs import JobService

CHAT_SETUP_HELP = (
    "the assistant is not configured: set TRAINYARD_CHAT_API_URL to an OpenAI-compatible API"
    " (e.g. https://api.openai.com/v1), TRAINYARD_CHAT_API_KEY to its key and optionally"
    " TRAINYARD_CHAT_MODEL, then restart Trainyard"
)
MAX_QUESTION_LENGTH = 4000
# A long training's epochs are summarised by its first and last ones: the grounding has to fit
# a chat model's context next to the question, and the trend shows at both ends.
EPOCHS_SHOWN_AT_EACH_END = 10
MAX_CLASSES_SHOWN = 50
MAX_DETAILS_CHARACTERS = 2000

SYSTEM_PROMPT = (
    "You are the assistant of Trainyard, a service that trains image classification, object"
    " detection and pose estimation models from users' datasets and serves them. Answer"
    " briefly and concretely, in the language of the question."
)
JOB_PROMPT = (
    "The user is asking about one of their training or inference jobs. Its record follows as"
    " JSON: status, error message if it failed, parameters, metrics per epoch and the dataset"
    " it used. Ground your answer in this record; quote the error when there is one and say"
    " what to change. If the record does not tell, say so rather than guess.\n\n"
)


class ChatUpstreamError(Exception):
    """The chat API answered with an error or not at all (the routes answer 502)."""


def checked_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise InvalidInput("question: must not be empty")
    if len(question) > MAX_QUESTION_LENGTH:
        raise InvalidInput(f"question: longer than {MAX_QUESTION_LENGTH} characters")
    return question


def ask_chat(settings: Settings, question: str) -> str:
    """The chat API's reply to one bare question (seed 004's GET /model)."""
    chat_api_url(settings)  # unconfigured says so before the question is judged
    return complete(settings, [{"role": "user", "content": checked_question(question)}])


def chat_api_url(settings: Settings) -> str:
    if not settings.chat_api_url:
        raise Unavailable(CHAT_SETUP_HELP)
    return settings.chat_api_url


def complete(settings: Settings, messages: list[dict[str, str]]) -> str:
    """POST <chat_api_url>/chat/completions with `messages`; the reply's text."""
    import httpx

    url = chat_api_url(settings).rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {settings.chat_api_key}"} if settings.chat_api_key else {}
    body = {"model": settings.chat_model, "messages": messages}
    try:
        # the URL is the operator's, still checked at use (SSRF): public https, or loopback
        # where TRAINYARD_ALLOW_LOOPBACK_URLS allows it; pinned to the checked address
        response = outbound.post(
            url,
            allow_loopback=settings.allows_loopback_urls,
            json=body,
            headers=headers,
            timeout=settings.chat_timeout_seconds,
        )
    except outbound.UnsafeURL as exc:
        raise Unavailable(f"TRAINYARD_CHAT_API_URL is refused: {exc.message}") from None
    except httpx.HTTPError as exc:
        raise ChatUpstreamError(f"the chat API at {url} did not answer ({exc.__class__.__name__})") from exc
    if response.status_code != 200:
        raise ChatUpstreamError(f"the chat API answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError) as exc:
        raise ChatUpstreamError("the chat API's answer has no choices[0].message.content") from exc
    if not isinstance(content, str):
        raise ChatUpstreamError("the chat API's answer has no text in choices[0].message.content")
    return content


class AssistantService:
    """Questions to the chat API, grounded in the asker's job when they name one."""

    def __init__(self, settings: Settings, jobs: JobService, datasets: DatasetService) -> None:
        self._settings = settings
        self._jobs = jobs
        self._datasets = datasets

    def ask(self, tenant_id: str, question: str, job_id: str | None) -> str:
        chat_api_url(self._settings)
        question = checked_question(question)
        system = SYSTEM_PROMPT
        if job_id is not None:
            job = self._jobs.get(tenant_id, job_id)  # NotFound for another tenant's job too
            system += "\n\n" + JOB_PROMPT + json.dumps(self.job_context(tenant_id, job), indent=1)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return complete(self._settings, messages)

    def job_context(self, tenant_id: str, job: Job) -> dict[str, Any]:
        """What the chat model is told about `job`: its record as the API shows it, its
        epochs (first and last ones of a long run) and a summary of its dataset."""
        # the API's view of the job, less its webhook URL: a URL may carry a token, and this
        # goes to a third party
        record = {k: v for k, v in public_job(job).items() if k != "webhook_url"}
        record["epochs_recorded"] = _epoch_summary(self._jobs.metrics(tenant_id, job.id))
        if job.dataset_id is not None:
            record["dataset"] = self._dataset_summary(tenant_id, job.dataset_id)
        return record

    def _dataset_summary(self, tenant_id: str, dataset_id: str) -> dict[str, Any]:
        try:
            dataset: Dataset = self._datasets.get(tenant_id, dataset_id)
        except NotFound:
            return {"id": dataset_id, "note": "this dataset no longer exists (deleted)"}
        details = json.dumps(dataset.details)  # pose and detection datasets describe their files
        return {
            "id": dataset.id,
            "name": dataset.name,
            "task": dataset.task.value,
            "image_count": dataset.image_count,
            "class_count": len(dataset.classes),
            "classes": dataset.classes[:MAX_CLASSES_SHOWN],
            "details": dataset.details
            if len(details) <= MAX_DETAILS_CHARACTERS
            else details[:MAX_DETAILS_CHARACTERS] + "…",
        }


def _epoch_summary(epochs: list[EpochMetrics]) -> dict[str, Any]:
    rows = [e.model_dump(mode="json", exclude={"job_id"}, exclude_none=True) for e in epochs]
    if len(rows) <= 2 * EPOCHS_SHOWN_AT_EACH_END:
        return {"count": len(rows), "epochs": rows}
    return {
        "count": len(rows),
        "first": rows[:EPOCHS_SHOWN_AT_EACH_END],
        "last": rows[-EPOCHS_SHOWN_AT_EACH_END:],
    }
