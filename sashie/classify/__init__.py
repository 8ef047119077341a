"""Labelling the collection: label files, text banks, CODER scores."""
