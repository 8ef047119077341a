"""The keep/exclude filter: a light classifier on the items' vectors that drops text, stains,
blank paper and blur, so that searches return illustrations (the seed paper's filter).

    model.py      KeepFilter: scoring vectors; saving and loading as data only (no pickle)
    learners.py   the five learners, grid-searched and compared (Tables 1 and 2)
    marking.py    keep/exclude marks from a CSV or a person at the terminal
"""
