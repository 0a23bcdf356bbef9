"""The frame around every view: one before-request, one after-request and one teardown hook
doing, in the order they always ran, what four, three and one hooks did (each a call
through Flask and a look-up of ``g`` and the request through their proxies).

Before the view: the HTTP metric's timer, the request id, the request log's start, the
form-origin check (which may answer a 403 page instead of the view). After it: the security
headers, the request line, the HTTP metric. At teardown: the request log's held lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, Response
from flask.globals import _cv_app, _cv_request

from oidc_link.ids import new_id
from oidc_link.web.form_origin import origin_of, refuse_foreign_form_post
from oidc_link.web.headers import add_answer_headers, is_https_issuer
from oidc_link.web.request_log import RequestLog
from oidc_link.web.request_metrics import TIMER_STARTED, record_request

if TYPE_CHECKING:
    from oidc_link.services import Services

STATIC_PREFIX = "/static/"


def install_request_frame(app: Flask, services: Services) -> None:
    """Install the frame's three hooks; the first hooks added, so that the metric's time
    covers every other one, and the request id exists before any other runs."""
    settings = services.settings
    metrics = services.metrics
    timer = metrics.timer
    request_log = RequestLog(settings)
    start_log = request_log.start
    own_origin = origin_of(settings.issuer)
    https = is_https_issuer(settings.issuer)

    @app.before_request
    def open_frame() -> tuple[str, int] | None:
        # g and the request themselves: each read through a proxy looks them up again.
        values = vars(_cv_app.get().g)
        values[TIMER_STARTED] = timer()
        request_id = values["request_id"] = new_id("req")
        start_log(values, request_id)
        return refuse_foreign_form_post(_cv_request.get().request, own_origin)

    @app.after_request
    def close_frame(response: Response) -> Response:
        incoming = _cv_request.get().request
        values = vars(_cv_app.get().g)
        add_answer_headers(
            response.headers,
            values.get("request_id", ""),
            cacheable=incoming.path.startswith(STATIC_PREFIX),
            https=https,
        )
        request_log.finish(incoming, values, response)
        record_request(metrics, incoming, values, response)
        return response

    @app.teardown_request
    def forget_request(_error: BaseException | None) -> None:
        RequestLog.forget(vars(_cv_app.get().g))
