"""The interactive API docs at /schema: Swagger UI from the vendored npm package
(web/vendor, pinned in web/package.json), so the page renders offline; no CDN, and no
inline script or style, so it works under the dashboard's Content-Security-Policy, plus
`img-src data:` for the icons Swagger UI's stylesheet embeds."""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI served from our own static files; web/app/schema-docs.js starts it
    on the JSON schema."""

    def __init__(self, path: tuple[str, ...] = ("/", "/swagger")) -> None:
        super().__init__(path=list(path))

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        """The page: Swagger UI's bundle and stylesheet, our starter script."""
        title = html.escape(str(openapi_schema["info"]["title"]))
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; img-src 'self' data:">
<title>{title} API</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/vendor/swagger-ui.css">
<link rel="stylesheet" href="/app/schema-docs.css">
<script src="/vendor/swagger-ui-bundle.js" defer></script>
<script src="/app/schema-docs.js" defer></script>
</head>
<body>
<main id="swagger-ui" data-schema-url="/schema/openapi.json"></main>
</body>
</html>
""".encode()


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """/schema (and /schema/swagger): Swagger UI; /schema/openapi.json: the schema."""
    return [SwaggerPage(), JsonRenderPlugin()]
