"""The map of a collection (issue 42): a 2-D layout of its vectors, its clusters and their names."""
