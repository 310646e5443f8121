"""App-wide error pages: JSON in OpenAI's shape under /v1, plain pages elsewhere."""
from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from extensions import db
from gateway.shapes import error_body


def register_error_handlers(app):
    @app.errorhandler(HTTPException)
    def http_error(exc):
        if request.path.startswith("/v1/") or request.path.startswith("/api/"):
            response = jsonify(error_body(exc.description, "invalid_request_error", exc.name.lower().replace(" ", "_")))
            response.status_code = exc.code
            return response
        return exc

    @app.errorhandler(500)
    def internal_error(exc):
        db.session.rollback()
        if request.path.startswith("/v1/") or request.path.startswith("/api/"):
            return jsonify(error_body("Internal error; it has been logged.", "server_error", "internal_error")), 500
        return "Internal error; it has been logged.", 500
