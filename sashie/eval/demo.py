"""`sashie demo`: a small evaluation world, indexed with the demo model, and searches on it.

Everything is offline: the world is drawn on the spot, the model ships with the package.
The pages are indexed as a user's would be (layout regions plus whole pages); 400 items are
labelled keep/exclude from the ground truth, as a person would mark them, and the filter
trained on them leaves text, stains and blank paper out of the searches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..classify.coder import OTHER
from ..filter.learners import table_overall
from ..library import Asked, Library, Result
from .references import reference_pictures
from .truth import ground_truth_marks, item_concepts
from .world import make_world, read_truth
from .world.artists import Artists
from .world.labels import write_label_file
from .world.vocab import vocabulary

DEMO_QUERIES = 3  # text queries shown
DEMO_MARKS = 400
DEMO_LEARNERS = ("random_forest", "svm")  # the paper's and the quickest


def example_query() -> str:
    """A query the demo world answers well: its first searched concept, as the demo asks."""
    vocab = vocabulary()
    return f"an illustration of {vocab.by_key[vocab.query_seen[0]].en}"


def run_demo(
    folder: str | Path, *, pages: int = 300, seed: int = 42, echo: Callable[[str], None] = print
) -> Path:
    folder = Path(folder)
    world = folder / "world"
    if not (world / "truth.jsonl").is_file():
        echo(f"drawing {pages} pages of an evaluation world into {world} ...")
        make_world(world, pages=pages, seed=seed, progress=True)
    truth = read_truth(world)
    lib = Library(folder / "library", create=True, progress=True)
    echo("indexing with the demo model (layout regions + whole pages) ...")
    report = lib.add([str(world / "pages")], regions="layout,whole")
    echo(report.summary())
    library = folder / "library"
    if not lib.filter.exists:
        echo(f"\n$ sashie filter mark {library} --ground-truth {world} --n {DEMO_MARKS}")
        lib.filter.mark(*ground_truth_marks(lib, world, DEMO_MARKS, seed), source="ground-truth")
        echo(f"$ sashie filter train {library} --learners {','.join(DEMO_LEARNERS)}")
        echo(table_overall(lib.filter.train(learners=DEMO_LEARNERS, seed=seed)))
    labels = world / "labels.csv"  # a world drawn by an older sashie has none yet
    if not labels.is_file():
        write_label_file(labels, vocabulary().concepts)
    echo(f"\n$ sashie classify {library} --labels {labels}")
    labelled = lib.labels.classify(labels)
    others = labelled.counts.get(OTHER, 0)
    classes = len(labelled.counts) - (OTHER in labelled.counts)
    echo(
        f"{labelled.labelled - others} items labelled with {classes} of the world's classes, "
        f"{others} with none of them ('{OTHER}') in {labelled.seconds:.0f} s; "
        "`sashie search --label` and the web page narrow by them"
    )
    counts = lib.counts()
    echo(
        f"searches cover the {counts['kept']} items kept; {counts['excluded']} are left out "
        "(sashie search --all shows them)"
    )

    vocab = vocabulary()
    by_key = vocab.by_key
    keys = list(vocab.query_seen[:DEMO_QUERIES])
    queries = [(f"an illustration of {by_key[k].en}", k) for k in keys[:-1]]
    queries.append((f"{by_key[keys[-1]].ja}の挿絵", keys[-1]))

    def show(command: str, key: str, hits: list[Result]) -> None:
        relevant = item_concepts([(h.page, h.bbox) for h in hits], truth, parts=True)
        echo(f"\n$ {command}")
        for hit, concepts in zip(hits, relevant):
            mark = "✓" if key in concepts else "✗"
            page = Path(hit.page).name
            echo(
                f"  {mark} {hit.rank:>2}  {hit.score:.3f}  {page}  bbox {list(hit.bbox)}  "
                f"({hit.detector})"
            )

    for text, key in queries:
        show(f'sashie search {library} "{text}" --k 5', key, lib.search(text, k=5))

    artists = Artists()
    refs = folder / "queries"
    refs.mkdir(exist_ok=True)
    key = vocab.query_seen[DEMO_QUERIES]
    paths = []
    for i, picture in enumerate(reference_pictures(artists, by_key[key], 3, seed=1)):
        path = refs / f"{by_key[key].en.replace(' ', '-')}-{i}.png"
        picture.save(path)
        paths.append(str(path))
    show(
        f"sashie search {library} --image {paths[0]} --k 5  # a Twemoji picture of "
        f"{by_key[key].en}",
        key,
        lib.search(Asked(images=paths[:1]), 5),
    )
    options = " ".join(f"-i {p}" for p in paths)
    show(f"sashie search {library} {options} --k 5", key, lib.search(Asked(images=paths), 5))
    echo(
        f"\n✓ = the ground truth says the item shows the concept (whole or in part). "
        "Try your own: "
        f'sashie search {library} "a picture of a cat"'
    )
    return folder
