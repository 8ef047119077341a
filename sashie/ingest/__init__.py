"""What comes in, and how it is read safely.

sources.py   folders, path lists, IIIF manifests, single images -> page references
images.py    bytes -> an upright RGB picture, or a one-line reason why not
cutting.py   a page read, decoded and cut into its regions' model input (PageCutter)
indexer.py   the Indexer: plans the pages, commits an engine's vectors batch by batch; the
             local engine (reader threads feeding the model)
ray_engine.py  the Ray engine: the same work on a Ray cluster (the `ray` extra)
"""
