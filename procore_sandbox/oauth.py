"""OAuth 2.0 server: /oauth/authorize (login + consent), /oauth/token, info, revoke."""

from flask import Blueprint

bp = Blueprint("oauth", __name__, template_folder="templates")
