"""The HTTP API, one router per area, each taking the served library from a dependency
(served.py): search.py (search, paging, feedback), items.py (items, their pictures, the boxes
drawn on their pages), annotations.py, marks.py (the filter's keep/exclude marks),
versions.py (adapt, use), labels.py (classify, label sets), iiif.py. sashie/app/server.py
makes the app: the security guard, the page, /api/info, and these routers."""
