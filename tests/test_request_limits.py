"""Flask's body and cookie limits hold as Flask sets them, though the app reads them once
(web/fixed_limits.py) rather than through ``current_app`` on every request."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from tests.conftest import ISSUER


def test_the_request_and_response_classes_carry_the_apps_configured_limits(app: Flask) -> None:
    config = app.config
    with app.test_request_context("/token", method="POST", base_url=ISSUER) as context:
        request = context.request
        assert isinstance(request, app.request_class)
        assert request.max_content_length == config["MAX_CONTENT_LENGTH"]
        assert request.max_form_memory_size == config["MAX_FORM_MEMORY_SIZE"]
        assert request.max_form_parts == config["MAX_FORM_PARTS"]
    assert app.response_class().max_cookie_size == config["MAX_COOKIE_SIZE"]


def test_a_limit_set_on_one_request_still_wins_over_the_apps(app: Flask) -> None:
    with app.test_request_context("/token", method="POST", base_url=ISSUER) as context:
        context.request.max_content_length = 10
        context.request.max_form_parts = 2
        context.request.max_form_memory_size = 3

        assert context.request.max_content_length == 10
        assert context.request.max_form_parts == 2
        assert context.request.max_form_memory_size == 3


def test_a_multipart_form_with_more_parts_than_flask_allows_is_refused(app: Flask) -> None:
    fields = {f"field{n}": "x" for n in range(app.config["MAX_FORM_PARTS"] + 1)}
    with app.test_request_context(
        "/token", method="POST", base_url=ISSUER, data=fields, content_type="multipart/form-data"
    ) as context, pytest.raises(RequestEntityTooLarge):
        context.request.form  # noqa: B018 - reading it parses the body


def test_a_form_within_flasks_limits_reaches_the_token_endpoint(app: Flask) -> None:
    answer = app.test_client().post("/token", data={"grant_type": "nonsense"}, base_url=ISSUER)

    assert answer.status_code in (400, 401)
    assert answer.get_json()["error"]
