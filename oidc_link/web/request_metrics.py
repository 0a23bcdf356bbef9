"""Times every request into the HTTP latency histogram, labelled by its Flask endpoint name.

The endpoint name, not the path: ``/v1/accounts/<id>`` is one series whatever the id. The
request frame (web/request_frame.py) starts the timer first of all and records last, so
every other step around the view is part of the request's time.
"""

from __future__ import annotations

from typing import Any

from flask import Request, Response

from oidc_link.metrics import Metrics

TIMER_STARTED = "request_timer_started"


def start_request_timer(metrics: Metrics, values: dict[str, Any]) -> None:
    values[TIMER_STARTED] = metrics.timer()


def record_request(
    metrics: Metrics, incoming: Request, values: dict[str, Any], response: Response
) -> None:
    # After error handlers' answers too. The timer has started unless the app was given
    # a before-request hook ahead of the frame's that answered first.
    started = values.get(TIMER_STARTED)
    if started is not None:
        metrics.http_request(
            incoming.endpoint, incoming.method, response.status_code, metrics.timer() - started
        )
