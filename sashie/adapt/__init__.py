"""Teaching a model a collection's words, over the vectors a library already holds.

settings.py   AdaptSettings: every default of a run, in one place
adapter.py    the visual adapter A(v) and applying it to millions of rows fast
phrasings.py  captions as people query them; the words a tuned text encoder keeps
losses.py     the contrastive loss shared with the demo model's trainer
training.py   the training loop: adapter + text encoder on (vector, caption) pairs
version_files.py  a model version's files: writing V′ = A(V) crash-safely, version.json
adapted.py    a model version's encoder: base image features through its adapter
"""
