"""Every blueprint is registered here, in one place."""


def register_blueprints(app):
    from blueprints.api import bp as openai_bp
    from blueprints.errors import register_error_handlers

    app.register_blueprint(openai_bp)
    register_error_handlers(app)
