"""Where a library keeps what it knows (only `sashie.library` writes here).

catalog.py      SQLite, read: pages, items, skipped inputs, marks, verdicts, annotations, label sets
transaction.py  SQLite, written: the writes of one step, all or nothing
schema.py       the catalog's tables; an older catalog brought to them
vectors.py      float16 vector files, memory-mapped, one per model and version
"""
