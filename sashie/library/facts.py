"""What `sashie info` tells of a library: pages, items, models and their vectors, marks,
labels, the filter, skipped inputs, and what is damaged (read around, never a traceback)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import SashieError
from ..ingest.indexer import reason_kind
from .checking import Checks
from .parts import Parts

if TYPE_CHECKING:
    from .library import Library

T = TypeVar("T")


def facts(library: Library, parts: Parts, *, skipped_inputs: bool) -> dict:
    """The library's facts (see `Library.info`)."""
    parts.notice_changes()
    counts = parts.catalog.counts()
    skipped = parts.catalog.skipped()
    damaged = Checks(parts, library).run(thorough=False)  # what follows reads around them
    return {
        "path": str(library.path.resolve()),
        "format_version": parts.manifest.format_version,
        "pages": counts["pages"],
        "items": counts["items"],
        "copies": counts["copies"],  # files holding an indexed page's bytes, not indexed
        "items_by_detector": parts.catalog.items_by_detector(),
        "models": [_model_facts(library, parts, model_id) for model_id in parts.manifest.models],
        "skipped": len(skipped),
        "skipped_by_reason": dict(Counter(reason_kind(s["reason"]) for s in skipped)),
        **({"skipped_inputs": skipped} if skipped_inputs else {}),
        "marks": parts.catalog.mark_counts(),
        "annotations": parts.catalog.annotation_count(),
        "label_sets": library.labels.list(),
        "filter": _unless_damaged(library.filter.describe),
        "disk_bytes": sum(f.stat().st_size for f in library.path.rglob("*") if f.is_file()),
        "damaged": [problem.as_dict() for problem in damaged],
    }


def _model_facts(library: Library, parts: Parts, model_id: str) -> dict:
    """What `info` says of a model; of a damaged one, its name and spec only."""
    found = _unless_damaged(lambda: parts.model_facts(model_id))
    if found is None:
        entry = parts.manifest.models[model_id]
        return {"id": model_id, "spec": entry["spec"], "dim": entry["dim"], "damaged": True}
    return found | {"composers": library.composer.summaries(model_id)}


def _unless_damaged(read: Callable[[], T]) -> T | None:
    """What `read` returns, or None when what it reads is damaged (`damaged` lists it)."""
    try:
        return read()
    except SashieError:
        return None
