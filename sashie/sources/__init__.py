"""Where pages come from, read safely: the first stage of the data flow, below regions and
indexing.

pages.py    folders, path lists, IIIF manifests, single images -> page references (PageRef)
images.py   bytes -> an upright RGB picture, or a one-line reason why not; safe fetching
"""
