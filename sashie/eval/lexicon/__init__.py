"""Words from real language resources, read offline, to teach the demo model language.

wordnet.py      English WordNet 3.0 (Debian `wordnet-base`): synsets, words, hypernyms, glosses
jmdict.py       JMdict (PyPI `jamdict-data`): Japanese headwords and readings, English senses
openclipart.py  Openclipart (Debian `openclipart-svg`): each drawing's title, description and
                its author's keywords

The repository keeps none of their text: each reader reads the installed package, and each
module's CREDIT names the licence for the model card of a model trained on it.
"""
