"""The township staff web pages (docs/operations.md ``GET /``). :data:`router` is included by
:func:`serving.app.create_app`; the static files are served by one of its routes, so the app needs
no extra mount."""

from sanling.serving.pages import county_pages, followup_pages  # noqa: F401 — register their pages
from sanling.serving.pages.routes import router

__all__ = ["router"]
