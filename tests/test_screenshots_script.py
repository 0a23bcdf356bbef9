"""docs/screenshots/take.py, the script that remakes the screenshots: its plan covers every
language the demo provider's discovery lists and the branded shop's pages, keeps the English
shots' names, matches the PNGs in the folder, and one language's walk really runs in
Chromium. The whole run (about 30 s) is left to the script itself.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from oidc_link.demo import DEMO_CLIENT_ID, RunningDemo, demo_settings, start_demo
from tests import test_browser

FOLDER = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# The shots the script took before it spoke other languages or knew brands; their names
# are linked from elsewhere and stay.
ENGLISH_SHOTS = [
    "01-email-mobile.png",
    "01-email-desktop.png",
    "02-email-invalid-mobile.png",
    "02-email-invalid-desktop.png",
    "03-code-mobile.png",
    "03-code-desktop.png",
    "04-code-wrong-mobile.png",
    "04-code-wrong-desktop.png",
    "05-code-expired-mobile.png",
    "06-code-resend-too-soon-mobile.png",
    "07-finished-mobile.png",
    "07-finished-desktop.png",
    "08-not-on-link-mobile.png",
    "08-not-on-link-desktop.png",
    "09-locked-mobile.png",
    "09-locked-desktop.png",
    "10-error-unknown-client-mobile.png",
    "10-error-unknown-client-desktop.png",
    "11-code-wrong-dark-mobile.png",
]

# The same Chromium as the other browser tests (a fixture by assignment).
chromium = test_browser.chromium


@pytest.fixture(scope="module")
def take() -> Iterator[ModuleType]:
    """The script, loaded as a module (it is not part of the package); registered while
    it is used, as its dataclasses look their module up by name."""
    name = "docs_screenshots_take"
    spec = importlib.util.spec_from_file_location(name, FOLDER / "take.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    running = start_demo(announce=lambda line: None)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def locales(demo: RunningDemo) -> list[str]:
    """What the demo provider's discovery lists, read here over HTTP (not by the script)."""
    url = demo.provider_url + "/.well-known/openid-configuration"
    listed = requests.get(url, timeout=10).json()["ui_locales_supported"]
    assert listed and "en" in listed
    return listed


def test_the_email_and_code_pages_are_shot_on_a_phone_in_every_language_discovery_lists(
    take: ModuleType, locales: list[str]
) -> None:
    walks = take.plan(locales)
    for locale in locales:
        wanted = [f"lang-{locale}-01-email-mobile.png", f"lang-{locale}-03-code-mobile.png"]
        found = [walk for walk in walks if walk.files == wanted]
        assert len(found) == 1, f"no walk shoots {wanted}"
        # Asked for both ways: ui_locales on the shop's login link, and the browser's language.
        assert found[0].ui_locales == locale
        assert found[0].locale == locale
        assert not found[0].branded


def test_the_branded_email_code_and_consent_pages_are_shot_on_a_phone_and_a_desktop(
    take: ModuleType, locales: list[str]
) -> None:
    branded = [walk for walk in take.plan(locales) if walk.branded]
    files = take.planned_files(branded)
    for page in ("01-email", "03-code", "12-consent"):
        for size in ("mobile", "desktop"):
            assert f"branded-{page}-{size}.png" in files
    assert "branded-01-email-dark-mobile.png" in files
    plain = take.planned_files(walk for walk in take.plan(locales) if not walk.branded)
    assert not [file for file in plain if file.startswith("branded-")]


def test_the_branded_shop_has_every_part_of_a_brand_and_passes_the_config_check(
    take: ModuleType,
) -> None:
    settings = demo_settings("http://127.0.0.1:5000", "http://127.0.0.1:5001", take.BRANDED_CLIENT)
    client = settings.client(DEMO_CLIENT_ID)
    assert client is not None
    assert client.brand.logo_uri == take.LOGO_URI
    assert client.brand.accent_color and client.brand.policy_uri and client.brand.tos_uri
    assert client.third_party  # so that the consent page is shown
    assert take.LOGO_FILE.read_text().startswith("<svg")


def test_the_english_shots_keep_their_names_and_no_file_is_planned_twice(
    take: ModuleType, locales: list[str]
) -> None:
    files = take.planned_files(take.plan(locales))
    assert [file for file in files if not file.startswith(("lang-", "branded-"))] == ENGLISH_SHOTS
    assert len(files) == len(set(files))


def test_the_folder_holds_exactly_the_shots_the_script_takes(
    take: ModuleType, locales: list[str]
) -> None:
    planned = set(take.planned_files(take.plan(locales)))
    present = {path.name for path in FOLDER.glob("*.png")}
    assert not planned - present, "missing screenshots: run python docs/screenshots/take.py"
    assert not present - planned, "stale screenshots: run python docs/screenshots/take.py"


def test_a_rerun_removes_only_the_screenshots_it_no_longer_takes(
    take: ModuleType, tmp_path: Path
) -> None:
    for name in ("01-email-mobile.png", "lang-xx-01-email-mobile.png", "README.md", "logo.svg"):
        (tmp_path / name).write_bytes(b"kept unless stale")

    removed = take.remove_stale(tmp_path, ["01-email-mobile.png"])

    assert [path.name for path in removed] == ["lang-xx-01-email-mobile.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "01-email-mobile.png",
        "README.md",
        "logo.svg",
    ]


def test_a_language_walk_saves_its_phone_sized_shots(
    take: ModuleType, locales: list[str], chromium: Any, tmp_path: Path
) -> None:
    console: list[str] = []
    running = start_demo(announce=console.append)
    try:
        walk = take.language_walk(locales[-1])
        take.take_walk(chromium, running, console, walk, tmp_path)
    finally:
        running.stop()

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(walk.files)
    for path in tmp_path.iterdir():
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", header[16:24]) == (390, 844)  # IHDR: width, height
    assert len(console) == 1  # the code page was reached: the sandbox sent one code
