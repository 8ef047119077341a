"""Where a library keeps what it knows (only `sashie.library` writes here).

catalog.py   SQLite: pages, items, skipped inputs, labels, verdicts, annotations
vectors.py   float16 vector files, memory-mapped, one per model and version
"""
