"""Times every request into the HTTP latency histogram, labelled by its Flask endpoint name.

The endpoint name, not the path: ``/v1/accounts/<id>`` is one series whatever the id.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from oidc_link.metrics import Metrics


def install_request_metrics(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def start_request_timer() -> None:
        g.request_timer_started = metrics.timer()

    @app.after_request
    def record_request(response: Response) -> Response:
        # Runs after error handlers' answers too. Installed before the other hooks, so the
        # timer has started unless the app was given hooks ahead of this one.
        started = g.get("request_timer_started")
        if started is not None:
            incoming = request._get_current_object()  # type: ignore[attr-defined]
            metrics.http_request(
                incoming.endpoint, incoming.method, response.status_code, metrics.timer() - started
            )
        return response
