"""The interfaces, thin layers over `sashie.Library`: they use its verbs and nothing else.

cli/      the `sashie` command, one module per command group
server.py the HTTP API (FastAPI) and web/index.html, the page
demo.py   `sashie demo`: a small world drawn, indexed, filtered and searched
"""
