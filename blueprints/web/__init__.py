"""The browser pages (session login, CSRF-protected forms, htmx)."""


def register_web(app):
    """Register the page blueprints; filled in by the web app work."""
