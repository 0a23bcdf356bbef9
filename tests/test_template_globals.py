"""Templates' globals as web/template_globals.py gives them: the environment's, live and
read-only, and a template's own still on top."""

from __future__ import annotations

import pytest
from flask import Flask


def test_a_page_template_sees_every_global_of_the_environment(app: Flask) -> None:
    template = app.jinja_env.get_template("email.html")

    assert dict(template.globals) == app.jinja_env.globals
    assert {"url_for", "request", "g", "config", "range"} <= set(template.globals)


def test_a_global_added_after_a_template_loaded_reaches_it(app: Flask) -> None:
    template = app.jinja_env.from_string("{{ added_later }}")
    cached = app.jinja_env.get_template("error.html")

    app.jinja_env.globals["added_later"] = "here"

    assert template.render() == "here"
    assert cached.globals["added_later"] == "here"


def test_no_template_can_change_the_environments_globals(app: Flask) -> None:
    template = app.jinja_env.get_template("email.html")

    with pytest.raises(TypeError):
        template.globals["range"] = None  # type: ignore[index]
    assert app.jinja_env.globals["range"] is range


def test_a_templates_own_globals_overlay_the_environments_for_it_alone(app: Flask) -> None:
    own = app.jinja_env.from_string("{{ range }} {{ dict is callable }}", globals={"range": "mine"})
    other = app.jinja_env.from_string("{{ range is callable }}")

    assert own.render() == "mine True"
    assert other.render() == "True"
    assert app.jinja_env.globals["range"] is range
