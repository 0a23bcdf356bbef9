"""The layering rules of DESIGN.md §2, checked on the source: dependencies point down only,
and each outside library is used by the one module that owns it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "oidc_link"

# Lower numbers are lower layers; a module may import only its own layer or lower ones.
LAYERS = {
    "clock": 0,
    "errors": 0,
    "ids": 0,
    # networks.py: the client network an address counts as for the rate limits.
    "networks": 0,
    # logs.py: formatters and the secret mask, standard library only; config reads its names.
    "logs": 0,
    # client/: the platforms' SDK for /v1 (issue 6); standalone, so it may import nothing of
    # ours above layer 0, and speaks HTTP with the standard library.
    "client": 0,
    "config": 1,
    "models": 1,
    "store": 2,
    # metrics.py: the Prometheus metrics; link/measured.py times Link calls into them.
    "metrics": 2,
    "link": 2,
    "backchannel": 2,
    # outbound.py: every fetch of a URL a client's configuration names (jwks_uri,
    # back-channel logout): the address policy, redirects, deadline and size cap.
    "outbound": 2,
    "keys": 3,
    # clock_skew.py: this instance's clock against Redis's TIME, into the log and a gauge.
    "clock_skew": 3,
    "sealed": 1,
    "services": 4,
    "interaction": 5,
    "sessions": 5,
    "consents": 5,
    "oauth": 5,
    "tokens": 5,
    "logout": 5,
    "accounts": 5,
    "account_links": 5,
    "account_sessions": 5,
    "idempotency": 5,
    "web": 6,
    "": 7,  # oidc_link/__init__.py: create_app, the composition root
    "cli": 7,
    # server.py: runs the app under granian (production) or werkzeug's reloader (--dev).
    "server": 7,
    "demo": 7,
}

# Which modules may import each outside library at run time.
OWNERS = {
    "flask": {"web", "demo"},
    "werkzeug": {"web", "demo", "cli", "server"},
    "granian": {"server"},
    "redis": {"store", "cli"},
    "fakeredis": {"store"},
    "cryptography": {"keys", "sealed"},
    "jwt": {"keys"},
    "authlib": {"oauth", "tokens", "demo"},
    # oauth: private_key_jwt checks client assertions with Authlib's JOSE library.
    "joserfc": {"demo", "oauth"},
    # Link's API only: URLs a client's configuration names go through outbound.py, which
    # speaks http.client to the address it checked.
    "requests": {"link"},
    "prometheus_client": {"metrics"},
}


def runtime_imports(path: Path) -> list[str]:
    """Imported module names, leaving out ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "" if parts == ("__init__",) else parts[0]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_import_only_lower_layers_and_the_libraries_they_own(path: Path) -> None:
    layer = layer_of(path)
    for name in runtime_imports(path):
        top, _, rest = name.partition(".")
        if top == "oidc_link":
            target = rest.split(".")[0]
            assert LAYERS[target] <= LAYERS[layer], f"{layer or '__init__'} imports {name}"
        elif top in OWNERS:
            assert layer in OWNERS[top], f"{layer or '__init__'} imports {top}"


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer_of(path) for path in MODULES} <= set(LAYERS)


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject lists packages by hand (templates/ and static/ are mapped in): a new
    subpackage missing from that list would be absent from a non-editable install."""
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(PACKAGE.parent).parts)
        for init in PACKAGE.rglob("__init__.py")
    }

    assert found <= listed
