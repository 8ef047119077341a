"""What comes in, and how it is read safely.

sources.py   folders, path lists, IIIF manifests, single images -> page references
images.py    bytes -> an upright RGB picture, or a one-line reason why not
indexer.py   pages -> regions -> crops -> vectors, committed batch by batch
"""
