"""A sample relying party: an honest Authlib Flask client that signs in with oidc-link.

It trusts only what it verified: the issuer, and the ID token's signature, iss, aud, exp, nonce.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, redirect, render_template_string, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response

SCOPE = "openid email profile"
# ui_locales (OIDC Core §3.1.2.1): language tags (BCP 47, in their plain form) separated by
# spaces, most preferred first; the provider picks the first it speaks.
_LANGUAGE_TAG = r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*"
_UI_LOCALES = re.compile(rf"^{_LANGUAGE_TAG}( {_LANGUAGE_TAG})*$")
_UI_LOCALES_LONGEST = 100
_TIME_CLAIMS = ("exp", "iat", "auth_time", "nbf")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Sample relying party</title>
  <style>
    body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto;
           padding: 0 1rem; color: #1a1a1a; }
    table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
    th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd;
             vertical-align: top; word-break: break-all; }
    th { width: 9rem; font-family: ui-monospace, monospace; font-weight: 600; }
    .button { display: inline-block; background: #00a36c; color: #fff; border: 0;
              border-radius: .4rem; padding: .6rem 1.2rem; font: inherit; cursor: pointer;
              text-decoration: none; }
    .error { border-left: 4px solid #c0392b; background: #fdf0ef; padding: .6rem 1rem; }
    small { color: #555; }
  </style>
</head>
<body>
  <h1>Sample relying party</h1>
  <p><small>Client <code>{{ client_id }}</code> of <code>{{ issuer }}</code></small></p>
{% if error %}
  <div class="error" role="alert">
    <h2>Sign-in failed</h2>
    <p><strong>{{ error }}</strong>{% if description %}: {{ description }}{% endif %}</p>
  </div>
  <p><a href="{{ url_for('home') }}">Back to the start</a></p>
{% elif claims %}
  <p>Signed in as
    <strong>{{ claims.get('name') or claims.get('email') or claims['sub'] }}</strong>.</p>
  <h2>Verified ID token claims</h2>
  <table id="claims">
    {%- for name, value in rows %}
    <tr><th scope="row">{{ name }}</th><td>{{ value }}</td></tr>
    {%- endfor %}
  </table>
  <form method="post" action="{{ url_for('logout') }}">
    <button class="button" type="submit">Sign out</button>
  </form>
{% else %}
  <p>You are not signed in.</p>
  <p><a class="button" href="{{ url_for('login') }}">Log in with Link</a></p>
{% endif %}
</body>
</html>
"""


def create_rp_app(issuer: str, client_id: str, client_secret: str, rp_base_url: str) -> Flask:
    """Build the sample RP; its callback is ``rp_base_url + "/callback"``."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    # The RP and the provider may share a host name (cookies ignore ports), so the RP's
    # session cookie gets a name of its own.
    app.config.update(
        SESSION_COOKIE_NAME="demo_rp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    oauth = OAuth(app)
    link = oauth.register(
        name="link",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=issuer + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )

    def page(status: int = 200, **context: Any) -> tuple[str, int]:
        context.setdefault("claims", None)
        context.setdefault("error", None)
        body = render_template_string(PAGE, issuer=issuer, client_id=client_id, **context)
        return body, status

    def failure(error: str, description: str | None = None) -> tuple[str, int]:
        return page(400, error=error, description=description)

    def discovered_issuer_problem() -> str | None:
        # OpenID Connect Discovery 1.0 §4.3: the issuer in the metadata must be the one we
        # asked; Authlib checks ID tokens against the metadata, so we check the metadata.
        found = link.load_server_metadata().get("issuer")
        if found != issuer:
            return f"the provider's metadata names issuer {found!r}, expected {issuer!r}"
        return None

    @app.get("/")
    def home() -> tuple[str, int]:
        claims = session.get("claims")
        return page(claims=claims, rows=_claim_rows(claims) if claims else [])

    @app.get("/login")
    def login() -> Response | tuple[str, int]:
        """Off to the provider; ``/login?ui_locales=fr`` asks for its pages in French."""
        problem = discovered_issuer_problem()
        if problem:
            return failure("wrong_issuer", problem)
        extra = {}
        ui_locales = request.args.get("ui_locales")
        if ui_locales is not None:
            if len(ui_locales) > _UI_LOCALES_LONGEST or not _UI_LOCALES.match(ui_locales):
                return failure(
                    "invalid_ui_locales",
                    "ui_locales must be language tags separated by spaces, such as fr or pt-BR en",
                )
            extra["ui_locales"] = ui_locales
        return link.authorize_redirect(rp_base_url + "/callback", **extra)

    @app.get("/callback")
    def callback() -> Response | tuple[str, int]:
        if "error" in request.args:
            # Only shown, never acted on, so it needs no further checks.
            return failure(request.args["error"], request.args.get("error_description"))
        problem = discovered_issuer_problem()
        if problem:
            return failure("wrong_issuer", problem)
        # RFC 9207 §2.4: the response names its issuer (when the provider says it will), which
        # defeats mix-up attacks between providers.
        response_issuer = request.args.get("iss")
        promised = link.load_server_metadata().get("authorization_response_iss_parameter_supported")
        if response_issuer is None and promised:
            return failure("wrong_issuer", "the authorization response did not name its issuer")
        if response_issuer is not None and response_issuer != issuer:
            return failure("wrong_issuer", "the authorization response came from another issuer")
        try:
            token = link.authorize_access_token(
                # Authlib checks the signature (JWKS), exp and nonce itself; iss and aud we
                # pin here, since by default it checks only azp and the metadata's issuer.
                claims_options={
                    "iss": {"essential": True, "value": issuer},
                    "aud": {"essential": True, "value": client_id},
                },
            )
        except OAuthError as error:
            return failure(error.error or "oauth_error", error.description)
        except JoseError as error:
            return failure("invalid_id_token", str(error))
        claims = token.get("userinfo")
        if not claims:
            return failure("invalid_id_token", "the token response carried no ID token")
        session["claims"] = dict(claims)
        session["id_token"] = token.get("id_token")
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout() -> Response:
        """Forget the user here, then end their Link session too (RP-Initiated Logout 1.0)."""
        id_token = session.get("id_token")
        session.clear()
        end_session = link.load_server_metadata().get("end_session_endpoint")
        if not end_session or not id_token:
            return redirect(url_for("home"))
        state = secrets.token_urlsafe(16)
        session["logout_state"] = state
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": rp_base_url + "/signed-out",
                "state": state,
            }
        )
        return redirect(f"{end_session}?{query}", 303)

    @app.get("/signed-out")
    def signed_out() -> Response | tuple[str, int]:
        expected = session.pop("logout_state", None)
        if expected is None or request.args.get("state") != expected:
            return failure("logout_failed", "the logout answer did not carry our state")
        return redirect(url_for("home"))

    return app


def _claim_rows(claims: dict[str, Any]) -> list[tuple[str, str]]:
    """Claims as (name, text) rows; times also shown in UTC, lists comma-separated."""
    rows = []
    for name, value in sorted(claims.items()):
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ", ".join(str(item) for item in value)
        elif name in _TIME_CLAIMS and isinstance(value, int | float):
            when = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            text = f"{value} ({when})"
        else:
            text = str(value)
        rows.append((name, text))
    return rows
