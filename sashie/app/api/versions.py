"""The model version endpoints: the versions, the one adaptation a server runs at a time in
the background, its loss curve, and switching versions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...adapt.settings import DEFAULTS, AdaptSettings
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


@router.get("/api/adapt", summary="Model versions and the adaptation in progress")
def adapt_state(served: ServedDep) -> dict:
    lib = served.lib
    versions = lib.versions.list() if lib.default_model else {"active": "base", "versions": []}
    return {**versions, "captions": lib.annotations.captions(), "job": served.adapting.state}


@router.post("/api/adapt", summary="Teach the model the annotations (runs in the background)")
def adapt(served: ServedDep, request: AdaptRequest) -> dict:
    settings = AdaptSettings.choose(
        epochs=request.epochs, ratio=request.ratio, target=request.target, realign=request.realign
    )
    settings.check()
    job, path, trust = served.adapting, served.lib.path, served.trust_remote_code

    def told(update: dict) -> None:
        loss = update.get("loss")
        job.progress(
            update["stage"], update["done"], update["total"],
            loss=None if loss is None else round(loss, 4),
        )  # fmt: skip

    def work() -> dict:
        with Library(path, trust_remote_code=trust) as worker:
            return worker.versions.adapt(settings=settings, progress=told).as_dict(paths=False)

    job.start(work, served.changed)
    return {"job": job.state}


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
