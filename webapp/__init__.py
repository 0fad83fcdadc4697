"""Crewclock: time tracking for construction crews, with a first-class Procore integration."""

import logging
import os
import re

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

from config import INSTANCE_DIR, config_from_env
from webapp.extensions import csrf, db, login_manager, migrate, oauth
from webapp.inputs import CleanRequest, IdConverter


def create_app(config_class=None, instance_path=None, **overrides) -> Flask:
    """Build the Flask app for `config_class` (from CREWCLOCK_ENV by default)."""
    config_class = config_class or config_from_env()
    if hasattr(config_class, "check"):
        config_class.check()
    app = Flask(__name__, instance_path=str(instance_path or INSTANCE_DIR))
    app.config.from_object(config_class)
    app.config.update(overrides)
    register_input_rules(app)
    register_proxy_fix(app)
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=app.config["LOG_LEVEL"])
    register_log_redaction(app)

    register_extensions(app)
    register_blueprints(app)
    register_security_headers(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_cli(app)
    return app


def register_input_rules(app: Flask) -> None:
    """NUL bytes never reach a view; `<int:...>` ids are ASCII digits within 64 bits."""
    app.request_class = CleanRequest
    app.url_map.converters["int"] = IdConverter


def register_proxy_fix(app: Flask) -> None:
    """Trust X-Forwarded-For/-Proto from exactly TRUSTED_PROXIES proxies (none by default:
    a client could otherwise pick the address the login throttle counts against)."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


class InviteTokenRedactor(logging.Filter):
    """Blank the token of /invite/<token> in log lines: the link lets its holder log in."""

    pattern = re.compile(r"(/invite/)[^\s?\"'/]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/invite/" in message:
            record.msg = self.pattern.sub(r"\1[redacted]", message)
            record.args = ()
        return True


# Loggers that print request lines or paths: the dev server's and gunicorn's access logs.
REQUEST_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def register_log_redaction(app: Flask) -> None:
    for logger in (*(logging.getLogger(name) for name in REQUEST_LOGGERS), app.logger):
        if not any(isinstance(f, InviteTokenRedactor) for f in logger.filters):
            logger.addFilter(InviteTokenRedactor())


def register_extensions(app: Flask) -> None:
    from webapp import models, sqlite_tuning  # noqa: F401  (the schema for Alembic; SQLite)
    from webapp.procore.tokens import register_procore_oauth

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    csrf.init_app(app)
    oauth.init_app(app)
    register_procore_oauth(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_id: str):
        """The user a session names, while its "<id>:<version>" is still the current one."""
        from webapp.inputs import parse_id
        from webapp.models import User

        user_id, _, version = session_id.partition(":")
        user_id = parse_id(user_id)
        if user_id is None or not version:
            return None  # sessions from before versions existed log in again
        user = db.session.get(User, user_id)
        if user is None or not user.active or version != str(user.session_version or 1):
            return None
        return user


def register_blueprints(app: Flask) -> None:
    from webapp.auth.routes import bp as auth_bp
    from webapp.costcodes.routes import bp as costcodes_bp
    from webapp.integrations.routes import bp as integrations_bp
    from webapp.people.routes import bp as people_bp
    from webapp.projects.routes import bp as projects_bp
    from webapp.push.routes import bp as push_bp
    from webapp.settings.routes import bp as settings_bp
    from webapp.setup.routes import bp as setup_bp
    from webapp.sync.routes import bp as sync_bp
    from webapp.timecards.routes import bp as timecards_bp

    for bp in (
        auth_bp,
        people_bp,
        projects_bp,
        costcodes_bp,
        timecards_bp,
        settings_bp,
        integrations_bp,
        setup_bp,
        push_bp,
        sync_bp,
    ):
        app.register_blueprint(bp)


def register_security_headers(app: Flask) -> None:
    login_origin = app.config["PROCORE_LOGIN_URL"]

    @app.after_request
    def security_headers(response):
        # form-action must allow the redirect to Procore's login after 'Connect'.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            f"form-action 'self' {login_origin}",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


ERROR_PAGES = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: ("Not allowed", "Your role does not allow this. Ask an admin if you need it."),
    404: ("Not found", "That page or record does not exist in your company."),
    405: ("Not allowed here", "That page cannot be used this way. Go back and use its buttons."),
    409: ("Already changed", "Someone or something changed this meanwhile. Reload the page."),
    413: ("Too large", "The request was too large."),
    422: ("Cannot use that input", "Some of what was sent cannot be used. Check it and retry."),
    429: ("Too many requests", "Too many attempts in a short time. Wait a moment and retry."),
    500: (
        "Something went wrong",
        "Crewclock hit an unexpected error. Try again, and tell your admin if it keeps happening.",
    ),
}


def register_error_handlers(app: Flask) -> None:
    import redis

    from webapp.htmx import is_fragment_request

    def render_error(status: int, title: str, message: str, headers=None):
        template = "errors/_error.html" if is_fragment_request() else "errors/error.html"
        try:
            body = render_template(template, status=status, title=title, message=message)
        except Exception:  # the layout itself failed (e.g. the database is gone): plain text
            app.logger.exception("error page %s could not be rendered", status)
            body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{message}</p>"
        return body, status, headers or {}

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_error(
            400,
            "Form expired",
            "The form was missing its security token. Reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        title, message = ERROR_PAGES.get(error.code, (error.name, error.description or ""))
        headers = {}
        if error.code == 405 and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        retry_after = dict(error.get_headers()).get("Retry-After")
        if retry_after:
            headers["Retry-After"] = retry_after
        return render_error(error.code, title, message, headers)

    @app.errorhandler(InternalServerError)
    def server_error(error):
        # A failed statement leaves the session unusable; the page itself may need it.
        try:
            db.session.rollback()
        except Exception:
            app.logger.exception("rollback after an error failed")
        return render_error(500, *ERROR_PAGES[500])

    @app.errorhandler(redis.exceptions.ConnectionError)
    def redis_down(error):
        app.logger.warning("Redis unavailable during %s %s", request.method, request.path)
        return render_error(
            503,
            "Background work is paused",
            "The job queue (Redis) is not reachable right now. Your data is safe; "
            "try again in a minute.",
        )


def register_template_helpers(app: Flask) -> None:
    from webapp.models import Role

    @app.context_processor
    def inject_globals():
        return {"Role": Role, "htmx_src": "vendor/htmx-2.0.11.min.js"}


def register_cli(app: Flask) -> None:
    from webapp.cli import register

    register(app)
