"""Health probes for load balancers and orchestrators: /healthz (the process answers) and
/readyz (this instance can serve sign-ins: Redis answers, signing keys are in memory, its
clock agrees with Redis's).

Both are cheap by design: no key reload, at most one Redis round trip, nothing logged but
a clock going beyond the allowed skew (once). A successful probe writes no request line
unless ``log_probe_requests = "line"`` (web/request_log.py); the HTTP metric counts it.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from oidc_link.errors import StoreUnavailableError
from oidc_link.web.context import services

health = Blueprint("health", __name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


def _probe_answer(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    # A cached "ok" would hide an outage from the next probe.
    response.headers["Cache-Control"] = "no-store"
    return response


@health.get(LIVENESS_PATH)
def liveness() -> Response:
    """Alive: the process answers HTTP. Deliberately no Redis call, so that an outage of
    Redis makes instances unready, not restarted (restarting cannot bring Redis back)."""
    return _probe_answer({"status": "ok"}, 200)


@health.get(READINESS_PATH)
def readiness() -> Response:
    """Ready: one TIME to Redis (bounded by the client's timeouts: it answers, and its clock
    is compared with ours) and the signing keys checked in memory. 503 names the check that
    failed.

    A clock beyond ``max_clock_skew`` makes the instance unready: its ID tokens carry times
    that far off, which strict relying parties reject (from the future) or take for
    expired, so the balancer had better send sign-ins to an instance with the right time.
    """
    found = services()
    try:
        reading = found.clock_skew.check()
    except StoreUnavailableError:
        reading = None
    keys_ok = found.keys.ready()
    clock = "unknown" if reading is None else "ok" if reading.within_limit else "skewed"
    checks = {
        "redis": "unreachable" if reading is None else "ok",
        "signing_keys": "ok" if keys_ok else "not_loaded",
        "clock": clock,
    }
    body: dict[str, object] = {"checks": checks}
    if reading is not None:
        body["clock_skew_seconds"] = reading.seconds
    if reading is not None and keys_ok and clock == "ok":
        return _probe_answer({"status": "ok", **body}, 200)
    return _probe_answer({"status": "unavailable", **body}, 503)
