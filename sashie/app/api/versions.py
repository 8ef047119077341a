"""The model version endpoints: the versions, the one adaptation a server runs at a time in
the background, its loss curve, and switching versions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...adapt.settings import DEFAULTS, AdaptSettings
from ...errors import SashieError
from ...library import Library
from .served import ServedDep

router = APIRouter()


class AdaptRequest(BaseModel):
    epochs: int = Field(DEFAULTS.epochs, ge=1, le=1000)
    ratio: float = Field(DEFAULTS.ratio, ge=0, le=1, allow_inf_nan=False)
    target: Literal["text", "images"] = Field(
        "text",
        description="text: teach the captions to text search; images: better image search "
        "(MCIP), the text encoder untouched unless realign",
    )
    realign: bool = Field(False, description="with images: re-align the text encoder (Re-A)")


class UseRequest(BaseModel):
    version: str = Field(min_length=1, max_length=40, description="v1, v2, ... or base")


class AdaptJob:
    """The one adaptation a server runs at a time, in a thread with its own Library (its own
    SQLite connection; the server's Library notices the new version itself); the page polls
    its state."""

    def __init__(self) -> None:
        self.state: dict = {"state": "idle"}
        self.thread: threading.Thread | None = None

    def start(
        self,
        path: Path,
        request: AdaptRequest,
        trust_remote_code: bool,
        finished: Callable[[], None],
    ) -> None:
        if self.thread is not None and self.thread.is_alive():
            raise SashieError("the model is being adapted already; wait for it to finish")
        settings = AdaptSettings.choose(
            epochs=request.epochs,
            ratio=request.ratio,
            target=request.target,
            realign=request.realign,
        )
        settings.check()
        self.state = {"state": "running", "stage": "starting", "done": 0, "total": 0}

        def run() -> None:
            try:
                with Library(path, trust_remote_code=trust_remote_code) as worker:
                    report = worker.versions.adapt(settings=settings, progress=self.progress)
                finished()
                self.state = {"state": "done", **report.as_dict(paths=False)}
            except SashieError as e:
                self.state = {"state": "failed", "error": str(e)}
            except Exception as e:
                self.state = {"state": "failed", "error": f"{type(e).__name__}: {e}"}

        self.thread = threading.Thread(target=run, name="sashie-adapt", daemon=True)
        self.thread.start()

    def progress(self, update: dict) -> None:
        loss = update.get("loss")
        self.state = {
            "state": "running",
            "stage": update["stage"],
            "done": update["done"],
            "total": update["total"],
            "loss": None if loss is None else round(loss, 4),
        }


@router.get("/api/adapt", summary="Model versions and the adaptation in progress")
def adapt_state(served: ServedDep) -> dict:
    lib = served.lib
    versions = lib.versions.list() if lib.default_model else {"active": "base", "versions": []}
    return {**versions, "captions": lib.annotations.captions(), "job": served.job.state}


@router.post("/api/adapt", summary="Teach the model the annotations (runs in the background)")
def adapt(served: ServedDep, request: AdaptRequest) -> dict:
    served.job.start(served.lib.path, request, served.trust_remote_code, served.changed)
    return {"job": served.job.state}


@router.get("/api/adapt/loss/{version}", summary="A model version's loss curve (PNG)")
def loss_plot(served: ServedDep, version: str) -> Response:
    path = served.lib.versions.loss_plot(version)
    if path is None:
        raise HTTPException(404, f"{version} has no loss curve")
    return Response(path.read_bytes(), media_type="image/png")


@router.post("/api/adapt/use", summary="Make a model version (or base) the active one")
def use(served: ServedDep, request: UseRequest) -> dict:
    served.lib.versions.use(request.version)
    served.changed()
    return served.lib.versions.list()
