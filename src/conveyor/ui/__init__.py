"""The web UI: server-rendered pages over the same query functions as `/api/v1`.

`create_app(settings, auth)` builds the FastAPI app that `conveyor ui` serves: the REST API
of `conveyor.api` plus the HTML pages of `conveyor.ui.views` and the package's own CSS and
progressive-enhancement script. Pages work without JavaScript; charts and graphs are SVG
drawn on the server (`conveyor.ui.svg`).
"""
