"""The baseline for bench/cold_start.py: the smallest FastAPI app behind Mangum."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
