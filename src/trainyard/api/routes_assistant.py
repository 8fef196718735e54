"""The assistant (the console's #/assistant page): a question, and optionally one of the
caller's jobs, answered by the configured OpenAI-compatible chat API with that job's record as
grounding (services/assistant.py).

It creates nothing, so it takes no Idempotency-Key. The chat API failing is the one answer
that is not a domain error: it is the upstream's fault, hence 502 rather than the handlers'
4xx/503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..services.assistant import MAX_QUESTION_LENGTH, AssistantService, ChatUpstreamError
from .deps import ServicesDep, TenantDep
from .errors import ERROR_RESPONSES, ErrorBody, error_body

router = APIRouter(prefix="/v1/assistant", tags=["assistant"], responses=ERROR_RESPONSES)


class AssistantQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_LENGTH)
    job_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="one of the caller's jobs, given to the chat API as context",
    )


class AssistantAnswer(BaseModel):
    answer: str
    job_id: str | None


@router.post(
    "",
    summary="Ask the assistant, optionally about one of your jobs",
    response_model=AssistantAnswer,
    responses={
        502: {"model": ErrorBody, "description": "The chat API failed or did not answer"},
        503: {"model": ErrorBody, "description": "No chat API is configured: the message says how"},
    },
)
async def ask_assistant(request: AssistantQuestion, services: ServicesDep, tenant: TenantDep) -> Any:
    assistant = AssistantService(services.settings, services.jobs, services.datasets)
    try:
        answer = await run_in_threadpool(assistant.ask, tenant, request.question, request.job_id)
    except ChatUpstreamError as exc:
        return JSONResponse(error_body("upstream_error", str(exc)), status_code=502)
    return AssistantAnswer(answer=answer, job_id=request.job_id)
