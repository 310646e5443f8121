"""Every blueprint is registered here, in one place."""


def register_blueprints(app):
    from blueprints.api import bp as openai_bp
    from blueprints.api.account import bp as account_bp
    from blueprints.api.catalog import bp as catalog_bp
    from blueprints.api.credit_chat import bp as credit_chat_bp
    from blueprints.api.logs import bp as logs_bp
    from blueprints.api.native import bp as native_bp
    from blueprints.api.provider_keys import bp as provider_keys_bp
    from blueprints.api.messages import bp as anthropic_bp
    from blueprints.errors import register_error_handlers
    from blueprints.health import bp as health_bp
    from blueprints.health_detail import bp as health_detail_bp
    from blueprints.metrics import bp as metrics_bp
    from blueprints.outages import init_app as fail_closed_without_database
    from blueprints.throttling import init_app as rate_limit_headers_and_health
    from blueprints.web import register_web

    app.register_blueprint(openai_bp)
    app.register_blueprint(anthropic_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(logs_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(credit_chat_bp)
    app.register_blueprint(native_bp)
    app.register_blueprint(provider_keys_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(health_detail_bp)
    app.register_blueprint(metrics_bp)
    rate_limit_headers_and_health(app)
    register_web(app)
    register_error_handlers(app)
    fail_closed_without_database(app)
