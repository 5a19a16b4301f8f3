"""REST API `/api/v1` and the query functions behind it (the pages call the same ones).

`conveyor.api.queries` holds one module per resource: typed functions that take the
metadata store (and the artifact store where bytes are needed) and return frozen
dataclasses, keyset-paginated. `conveyor.api.app.create_api_app` serves them as JSON;
`conveyor.api.auth` holds tokens, roles and CSRF protection.
"""
