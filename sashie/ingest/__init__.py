"""Indexing: pages (sashie/sources) cut into their regions and encoded, batch by batch.

cutting.py   a page read, decoded and cut into its regions' model input (PageCutter)
indexer.py   the Indexer: plans the pages, commits an engine's vectors batch by batch; the
             local engine (reader threads feeding the model)
ray_engine.py  the Ray engine: the same work on a Ray cluster (the `ray` extra)
"""
