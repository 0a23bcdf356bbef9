"""The email and code pages come from frames (web/page_frames.py): rendered once per kind
of page with holes for each request's values. What a browser gets from a frame is, byte for
byte, what the template renders, in every language, with a brand and without; a frame that
would not reproduce the render is never used.

The tests on the shared fixtures run twice, on the embedded fakeredis and on a real
redis-server.
"""

from __future__ import annotations

import itertools
import logging
import re

import flask
import pytest
from flask import Flask
from jinja2 import Environment
from werkzeug.test import TestResponse

from oidc_link.config import LOCALES, Settings, settings_from_mapping
from oidc_link.models import Flow, FlowStep
from oidc_link.web.context import services
from oidc_link.web.page_frames import PageFrames, page_frames
from oidc_link.web.pages import flow_page
from tests.conftest import ISSUER, JENNY, SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty

REQUEST_ID = re.compile(r"req_[A-Za-z0-9_-]+")


@pytest.fixture
def settings() -> Settings:
    """Shop with a brand (logo, links, accent); blog as it is (no name, no brand)."""
    config = provider_config()
    config["clients"][0].update(  # type: ignore[index]
        logo_uri="https://cdn.shop.example.test/logo.png",
        client_uri="https://shop.example.test/",
        policy_uri="https://shop.example.test/privacy?a=1&b=2",
        accent_color="#0a6b47",
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def rendered_in_full(app: Flask, answer: TestResponse, flow_path: str) -> str:
    """The page of the flow behind ``answer`` as its template renders it, in a request of
    the same id, with frames out of the way (as under ``--dev``, templates reloading)."""
    page = answer.get_data(as_text=True)
    found = REQUEST_ID.search(page)
    assert found is not None
    with app.app_context():
        flow = services().store.flows.load(flow_path.removeprefix("/signin/"))
    assert flow is not None
    with app.test_request_context(flow_path, base_url=ISSUER):
        flask.g.request_id = found.group()
        app.jinja_env.auto_reload = True
        try:
            return flow_page(services(), flask.request._get_current_object(), flow)[0]
        finally:
            app.jinja_env.auto_reload = False


@pytest.mark.parametrize("locale", LOCALES)
def test_the_email_and_code_pages_from_frames_are_what_the_templates_render_in_every_language(
    app: Flask, locale: str
) -> None:
    clients = [
        RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET),
        RelyingParty(app, ISSUER, "blog", "https://blog.example.test/auth", "unused"),
    ]
    # Twice for each kind of page to earn its frame's trust, then from the frame.
    for _, rp, hint in itertools.product(range(3), clients, ["", JENNY]):
        browser = Browser(app, ISSUER)
        extra = {"ui_locales": locale} | ({"login_hint": hint} if hint else {})
        email_page = browser.start(rp.authorization_request(**extra).url)
        flow = browser.flow_path()
        assert email_page.get_data(as_text=True) == rendered_in_full(app, email_page, flow)
        code_page = browser.submit("/email", email=JENNY)
        assert code_page.status_code == 200
        assert code_page.get_data(as_text=True) == rendered_in_full(app, code_page, flow)

    # Each client's email page with and without a hint, and its code page.
    assert page_frames(app).trusted() == 6


def a_flow(number: int, **changes: object) -> Flow:
    return Flow(
        id=f"flow_{number}",
        browser_digest="d",
        client_id="shop",
        authorization={},
        csrf_token=f"token-{number}<&>",
        created_at=0,
        expires_at=60,
        step=FlowStep.CODE,
        email=f"person{number}@example.com",
        redacted_phone="+1 *** 23",
    ).advance(**changes)


def renderer(source: str, also: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    template = Environment(autoescape=True).from_string(source)

    def render(**context: object) -> str:
        return template.render(**context, **(also or {}))

    return render


def test_a_page_from_its_frame_escapes_each_value_as_the_template_does() -> None:
    frames = PageFrames()
    render = renderer('<a href="{{ flow_url }}">{{ flow.email }}</a> {{ flow.csrf_token }}')

    for number in range(4):
        flow = a_flow(number, email=f'"quoted" <{number}>@example.com')
        own = {"flow_url": f"/signin/{flow.id}?a=1&b=2"}
        assert frames.page("kind", flow, own, render) == render(flow=flow, **own)
    assert frames.trusted() == 1


def test_a_template_reading_a_field_without_a_hole_is_always_rendered_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = PageFrames()
    render = renderer("{{ flow.id }} {{ flow.email }}")

    with caplog.at_level(logging.WARNING, logger="oidc_link.web.page_frames"):
        pages = [frames.page("kind", a_flow(n), {}, render) for n in range(4)]

    assert pages == [render(flow=a_flow(n)) for n in range(4)]
    assert frames.trusted() == 0
    assert len(caplog.records) == 1  # said once


def test_a_value_the_template_transforms_is_always_rendered_in_full() -> None:
    frames = PageFrames()
    render = renderer("{{ flow_url | upper }}")

    pages = [frames.page("kind", a_flow(n), {"flow_url": f"/x/{n}"}, render) for n in range(4)]

    assert pages == [f"/X/{n}" for n in range(4)]
    assert frames.trusted() == 0


def test_an_empty_value_a_template_tests_gets_a_frame_of_its_own() -> None:
    frames = PageFrames()
    render = renderer("{% if email_value %}[{{ email_value }}]{% else %}none{% endif %}")

    for number in range(6):
        value = f"p{number}@example.com" if number % 2 else ""
        page = frames.page("kind", a_flow(number), {"email_value": value}, render)
        assert page == (f"[{value}]" if value else "none")
    assert frames.trusted() == 2


def test_a_page_global_that_changes_per_request_keeps_its_page_rendered_in_full() -> None:
    frames = PageFrames()
    count = itertools.count()

    def render(**context: object) -> str:
        return renderer("{{ flow.email }} {{ nonce }}", {"nonce": next(count)})(**context)

    pages = [frames.page("kind", a_flow(1), {}, render) for _ in range(4)]

    assert len(set(pages)) == 4
    assert frames.trusted() == 0
