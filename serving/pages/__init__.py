"""The township staff web pages (CONTRACT §5 ``GET /``). :data:`router` is included by
:func:`serving.app.create_app`; the static files are served by one of its routes, so the app needs
no extra mount."""

from serving.pages.routes import router

__all__ = ["router"]
