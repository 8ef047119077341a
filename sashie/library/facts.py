"""What `sashie info` tells of a library: pages, items, models and their vectors, marks,
labels, the filter, skipped inputs, and what is damaged (read around, never a traceback)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from ..errors import SashieError
from ..ingest.indexer import reason_kind
from .checking import Checks
from .composers import Composers
from .filtering import Filter
from .labels import Labels
from .parts import Parts

T = TypeVar("T")


def facts(
    parts: Parts,
    checks: Checks,
    *,
    labels: Labels,
    keep_filter: Filter,
    composers: Composers,
    skipped_inputs: bool,
) -> dict:
    """The library's facts (see `Library.info`)."""
    parts.notice_changes()
    counts = parts.catalog.counts()
    skipped = parts.catalog.skipped()
    damaged = checks.run(thorough=False)  # what follows reads around them
    return {
        "path": str(parts.path.resolve()),
        "format_version": parts.manifest.format_version,
        "pages": counts["pages"],
        "items": counts["items"],
        "copies": counts["copies"],  # files holding an indexed page's bytes, not indexed
        "items_by_detector": parts.catalog.items_by_detector(),
        "models": [_model_facts(parts, composers, model_id) for model_id in parts.manifest.models],
        "skipped": len(skipped),
        "skipped_by_reason": dict(Counter(reason_kind(s["reason"]) for s in skipped)),
        **({"skipped_inputs": skipped} if skipped_inputs else {}),
        "marks": parts.catalog.mark_counts(),
        "annotations": parts.catalog.annotation_count(),
        "label_sets": labels.list(),
        "printings": {  # what `sashie printings --all` found
            "compared": parts.catalog.printing_pairs.compared_count(),
            "pairs": parts.catalog.printing_pairs.count(),
        },
        "filter": _unless_damaged(keep_filter.describe),
        "disk_bytes": sum(f.stat().st_size for f in parts.path.rglob("*") if f.is_file()),
        "damaged": [problem.as_dict() for problem in damaged],
    }


def _model_facts(parts: Parts, composers: Composers, model_id: str) -> dict:
    """What `info` says of a model; of a damaged one, its name and spec only."""
    found = _unless_damaged(lambda: parts.model_facts(model_id))
    if found is None:
        entry = parts.manifest.models[model_id]
        return {"id": model_id, "spec": entry["spec"], "dim": entry["dim"], "damaged": True}
    return found | {"composers": composers.summaries(model_id)}


def _unless_damaged(read: Callable[[], T]) -> T | None:
    """What `read` returns, or None when what it reads is damaged (`damaged` lists it)."""
    try:
        return read()
    except SashieError:
        return None
