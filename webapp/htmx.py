"""Helpers for serving one URL as a full page or as an HTMX fragment."""

from flask import Response, make_response, render_template, request


def is_fragment_request() -> bool:
    """True when htmx asked for a fragment (HX-Request set and not a boosted navigation)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render_page_or_fragment(page: str, fragment: str, status: int = 200, **context) -> Response:
    """Render `fragment` for htmx requests and `page` otherwise, with Vary: HX-Request."""
    template = fragment if is_fragment_request() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def render_fragment(fragment: str, status: int = 200, **context) -> Response:
    """Render a fragment-only template (validation errors answer 422)."""
    response = make_response(render_template(fragment, **context), status)
    response.vary.add("HX-Request")
    return response


def hx_redirect(url: str) -> Response:
    """Redirect the browser: HX-Redirect for htmx, a 303 for plain forms."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    response = make_response("", 303)
    response.headers["Location"] = url
    return response
