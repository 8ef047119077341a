"""The path of a query, from what the user typed to ranked item ids.

query.py     text, images and `"crane" + pine.jpg - "text"` -> a query vector (+ dims)
ranking.py   exact top-k over the vectors in RAM; subspace ranking; CV dimension choice
feedback.py  relevance feedback: learners that refine a search from the user's marks
memory.py    a model version's remembered examples, which a taught caption's query uses
"""
