"""App-wide error pages: JSON in OpenAI's shape under /v1 and /api, styled pages with the navigation elsewhere."""
from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from extensions import db
from gateway.shapes import error_body

# What a person can do next, by status; anything else shows Werkzeug's own description.
NEXT_STEPS = {
    400: ("Bad request", "The page could not use what was sent. Go back, reload the page and try again."),
    403: ("Not allowed", "Your account may not open this page. Administrators can change roles on the Admin page."),
    404: ("Page not found", "There is nothing at this address. It may have been deleted, or it is another account's."),
    405: ("Not allowed here", "This address does not take that kind of request. Open it from the navigation instead."),
    429: ("Too many requests", "Slow down a little, then try again."),
    500: ("Something went wrong", "The error has been logged. Try again; if it keeps happening, tell the operator."),
}


def register_error_handlers(app):
    @app.errorhandler(HTTPException)
    def http_error(exc):
        if _is_api():
            response = jsonify(error_body(exc.description, "invalid_request_error", exc.name.lower().replace(" ", "_")))
            response.status_code = exc.code
            return response
        own_words = exc.description if exc.description != type(exc).description else None
        return error_page(exc.code, exc.name, own_words, exc.get_headers())

    @app.errorhandler(500)
    def internal_error(exc):
        db.session.rollback()
        if _is_api():
            return jsonify(error_body("Internal error; it has been logged.", "server_error", "internal_error")), 500
        return error_page(500, "Internal Server Error")


def error_page(code, name, detail=None, headers=()):
    """The status's page inside the site's layout; keeps headers such as Retry-After and Allow."""
    title, next_step = NEXT_STEPS.get(code, (name, None))
    kept = [(key, value) for key, value in headers if key.lower() != "content-type"]
    return render_template("errors/error.html", code=code, title=title, detail=detail, next_step=next_step), code, kept


def _is_api():
    return request.path.startswith("/v1/") or request.path.startswith("/api/")
