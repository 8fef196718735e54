"""Seed 004's API (../shared/seeds/004_*.txt): the handwritten-digits app's routes, as its
pages call them.

- POST /predict  JSON {image: <base64 PNG of the canvas, data: prefix optional>}
                 → {"prediction": <digit>} or {"prediction": "<message>"}
- POST /training multipart file1 (train CSV), file2 (test CSV), epoch → a short HTML message
- GET  /model?question=  → the chat API's reply as text

Each route answers failures in the form its page shows: /predict in its `prediction` field,
/training as HTML, /model as text. The work is services/digits.py over the core services.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ...domain import JobStatus
from ...errors import InvalidInput, PayloadTooLarge
from ...services.assistant import ChatUpstreamError, ask_chat
from ...services.digits import DigitService, DigitTraining
from ..deps import ServicesDep, declared_body, multipart_form, read_json_body
from ..idempotency import SeedIdempotent
from .common import SeedTenantDep, seed_router

CANVAS_HELP = "the canvas as a base64 PNG (a data:image/png;base64, prefix is fine)"
EPOCH_HELP = "the number of training epochs, an integer from 1 to 500"


def render_error(status: int, code: str, message: str) -> JSONResponse:
    """/predict's pages show `prediction` whatever it holds, so refusals go there too."""
    return JSONResponse({"prediction": message}, status_code=status)


def render_html_error(status: int, code: str, message: str) -> HTMLResponse:
    return HTMLResponse(f'<p class="error">{html.escape(message)}</p>', status_code=status)


def render_text_error(status: int, code: str, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


router = seed_router(render_error)
training_router = seed_router(render_html_error)
chat_router = seed_router(render_text_error)


# The routes read their bodies and the question themselves (to cap sizes and answer in each
# page's form); these declarations say what they take.
PREDICT_BODY = declared_body(
    {
        "application/json": {
            "type": "object",
            "required": ["image"],
            "properties": {"image": {"type": "string", "description": CANVAS_HELP}},
        }
    }
)
TRAINING_BODY = declared_body(
    {
        "multipart/form-data": {
            "type": "object",
            "required": ["file1", "file2", "epoch"],
            "properties": {
                "file1": {"type": "string", "format": "binary", "description": "the training CSV"},
                "file2": {"type": "string", "format": "binary", "description": "the test CSV"},
                "epoch": {"type": "integer", "minimum": 1, "maximum": 500},
            },
        }
    }
)
CHAT_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The reply", "content": {"text/plain": {"schema": {"type": "string"}}}},
    502: {"description": "The chat API failed", "content": {"text/plain": {"schema": {"type": "string"}}}},
    503: {
        "description": "No chat API is configured",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
QUESTION_PARAMETER = {
    "parameters": [
        {"name": "question", "in": "query", "required": True, "schema": {"type": "string"}},
    ]
}


def _digits(services: ServicesDep) -> DigitService:
    return DigitService(services.store, services.datasets, services.jobs, services.models)


@router.post(
    "/predict", summary="The digit drawn on a canvas: JSON {image: <base64 PNG>}", openapi_extra=PREDICT_BODY
)
async def predict(request: Request, services: ServicesDep, tenant: SeedTenantDep) -> JSONResponse:
    body = await read_json_body(request, services.settings.inline_limit)
    if "image" not in body:
        raise InvalidInput(f"image: required, {CANVAS_HELP}")
    answer = await run_in_threadpool(
        _digits(services).predict, tenant, body["image"], services.settings.max_image_pixels
    )
    return JSONResponse({"prediction": answer})


async def _csv_file(form: FormData, field: str, what: str, limit: int) -> bytes:
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        raise InvalidInput(f"{field}: required, {what} as a CSV file field")
    data = await upload.read(limit + 1)  # the cap holds even when the request declared no length
    if len(data) > limit:
        raise PayloadTooLarge(f"{field}: over the {limit}-byte limit")
    return data


def _epochs(value: object) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"epoch: required, {EPOCH_HELP}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"epoch: {value!r} is not an integer; {EPOCH_HELP}") from None


def _training_page(outcome: DigitTraining) -> HTMLResponse:
    job = outcome.job
    ids = f'data-job-id="{html.escape(job.id)}" data-model-id="{html.escape(job.model_id or "")}"'
    if not outcome.finished:
        job_id = html.escape(job.id)
        return HTMLResponse(
            f'<p class="pending" {ids}>Training is still running (job {job_id},'
            f" epoch {job.current_epoch or 0} of {job.epochs}). Follow it at GET /v1/jobs/{job_id};"
            " the new model answers /predict as soon as it has finished.</p>",
            status_code=202,
        )
    if job.status is JobStatus.SUCCEEDED:
        accuracy = job.val_accuracy if job.val_accuracy is not None else float("nan")
        return HTMLResponse(
            f'<p class="success" {ids} data-accuracy="{accuracy:.4f}">Model trained: accuracy on the'
            f" test set {accuracy * 100:.2f} % after {job.epochs} epochs.</p>"
        )
    if job.status is JobStatus.CANCELLED:
        return render_html_error(409, "cancelled", f"Training was cancelled (job {job.id}).")
    return render_html_error(
        500, "training_failed", f"Training failed (job {job.id}): {job.error or 'no reason given'}"
    )


@training_router.post(
    "/training",
    summary="Train the digit model: file1 (train CSV), file2 (test CSV), epoch",
    response_class=HTMLResponse,
    responses={202: {"description": "Still training: where to follow it", "content": {"text/html": {}}}},
    openapi_extra=TRAINING_BODY,
)
async def training(
    request: Request, services: ServicesDep, tenant: SeedTenantDep, call: SeedIdempotent
) -> Response:
    if call.replayed is not None:
        return call.replayed
    settings = services.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"the request is {declared} bytes, over the {settings.max_upload_bytes}-byte limit"
        )
    form = await multipart_form(request, max_files=2)
    epochs = _epochs(form.get("epoch"))
    train_csv = await _csv_file(form, "file1", "the training set", settings.max_upload_bytes)
    test_csv = await _csv_file(form, "file2", "the test set", settings.max_upload_bytes)
    digits = _digits(services)
    job = await run_in_threadpool(digits.start_training, tenant, train_csv, test_csv, epochs)
    outcome = await run_in_threadpool(digits.wait, tenant, job.id, settings.digits_training_wait)
    return call.remember(_training_page(outcome))  # a failed training's page is not kept


@chat_router.get(
    "/model",
    summary="Ask the assistant: the chat API's reply as text",
    response_class=PlainTextResponse,
    responses=CHAT_ANSWERS,
    openapi_extra=QUESTION_PARAMETER,
)
async def model(request: Request, services: ServicesDep, tenant: SeedTenantDep) -> Response:
    question = request.query_params.get("question")
    if question is None:
        raise InvalidInput("question: required, the question to ask (GET /model?question=...)")
    try:
        reply = await run_in_threadpool(ask_chat, services.settings, question)
    except ChatUpstreamError as exc:
        return render_text_error(502, "upstream_error", str(exc))
    return PlainTextResponse(reply)


router.include_router(training_router)
router.include_router(chat_router)
