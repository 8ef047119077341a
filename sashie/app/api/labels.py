"""The labelling endpoints: every item labelled with a label set's classes, and the sets."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...classify.coder import DEFAULT_METHOD, OTHER_BELOW
from ...classify.labelfile import LabelSet
from ...errors import SashieError
from .served import ServedDep

MAX_CLASSES = 10_000  # classes of a label set sent to POST /api/classify

router = APIRouter()


class ClassifyRequest(BaseModel):
    labels: dict = Field(description='a label set: {"name": ..., "classes": [{"name": ...}]}')
    method: str = Field(DEFAULT_METHOD, max_length=20, description="prompt or coder")
    few_shot: bool = False
    rerank: bool = True
    other_below: float | None = Field(
        OTHER_BELOW,
        ge=0,
        le=100,
        description='deviations a best class must stand out by, else "other"; null: none',
    )


@router.get("/api/label-sets", summary="The label sets `classify` made, and their counts")
def label_sets(served: ServedDep) -> dict:
    return {"label_sets": served.lib.labels.list()}


@router.post("/api/classify", summary="Label every item with a label set's classes")
def classify(served: ServedDep, request: ClassifyRequest) -> dict:
    labels = LabelSet.from_json(request.labels)
    if len(labels.classes) > MAX_CLASSES:
        raise SashieError(f"at most {MAX_CLASSES:,} classes a label set here")
    report = served.lib.labels.classify(
        labels,
        method=request.method,
        few_shot=request.few_shot,
        rerank=request.rerank,
        other_below=request.other_below,
    )
    served.changed()
    return report.as_dict()
