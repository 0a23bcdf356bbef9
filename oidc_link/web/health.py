"""Health probes for load balancers and orchestrators: /healthz (the process answers) and
/readyz (this instance can serve sign-ins: Redis answers, signing keys are in memory).

Both are cheap by design: no key reload, at most one Redis round trip, nothing logged.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from oidc_link.errors import StoreUnavailableError
from oidc_link.web.context import web_context

health = Blueprint("health", __name__)


def _probe_answer(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    # A cached "ok" would hide an outage from the next probe.
    response.headers["Cache-Control"] = "no-store"
    return response


@health.get("/healthz")
def liveness() -> Response:
    """Alive: the process answers HTTP. Deliberately no Redis call, so that an outage of
    Redis makes instances unready, not restarted (restarting cannot bring Redis back)."""
    return _probe_answer({"status": "ok"}, 200)


@health.get("/readyz")
def readiness() -> Response:
    """Ready: one PING to Redis (bounded by the client's timeouts) and the signing keys
    checked in memory. 503 names the check that failed."""
    services = web_context().services
    try:
        redis_ok = services.store.ping()
    except StoreUnavailableError:
        redis_ok = False
    keys_ok = services.keys.ready()
    checks = {
        "redis": "ok" if redis_ok else "unreachable",
        "signing_keys": "ok" if keys_ok else "not_loaded",
    }
    if redis_ok and keys_ok:
        return _probe_answer({"status": "ok", "checks": checks}, 200)
    return _probe_answer({"status": "unavailable", "checks": checks}, 503)
