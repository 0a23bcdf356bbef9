"""The layering rules of DESIGN.md §2, checked on the source: dependencies point down only,
and each outside library is used by the one module that owns it. Below them, issue 15's
shape rules: modules stay short, imports form no cycle, and one layer's modules stay apart."""

from __future__ import annotations

import ast
import functools
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "oidc_link"

# Lower numbers are lower layers; a module may import lower layers, and in its own layer only
# its own package or a pair SAME_LAYER_IMPORTS (below) lists.
LAYERS = {
    "clock": 0,
    "errors": 0,
    "ids": 0,
    # networks.py: the client network an address counts as for the rate limits.
    "networks": 0,
    # logs/: the log handler, formatters and secret mask (standard library and orjson, its
    # line encoder); config reads its names.
    "logs": 0,
    # client/: the platforms' SDK for /v1 (issue 6); standalone, so it may import nothing of
    # ours above layer 0, and speaks HTTP with the standard library.
    "client": 0,
    "config": 1,
    "models": 1,
    # records.py: the JSON record every stored dataclass is (models.py's, the platform's).
    "records": 0,
    "store": 2,
    # metrics.py: the Prometheus metrics; link/measured.py times Link calls into them.
    "metrics": 2,
    "link": 2,
    # outbound.py: every fetch of a URL a client's configuration names (jwks_uri,
    # back-channel logout): the address policy, redirects, deadline and size cap.
    "outbound": 2,
    # outbox/: the outbox's worker (issue 18): reads the store's streams and calls the
    # kinds' handlers (webhooks/, back-channel logout), so it sits above both.
    "outbox": 3,
    # backchannel.py: back-channel logout notices, the outbox's kind that fans a logout out
    # to its clients and POSTs each one's logout token (signed by logout.py, passed in).
    "backchannel": 4,
    # webhooks/: signing a delivery, one attempt at it over outbound.py, and the outbox's
    # kind that fans an event out to the endpoints subscribed to it (issue 18).
    "webhooks": 4,
    "keys": 3,
    # clock_skew.py: this instance's clock against Redis's TIME, into the log and a gauge.
    "clock_skew": 3,
    "sealed": 1,
    "sessions": 4,
    # platform/: accounts, Account Links, account sessions, idempotency (DESIGN.md §2).
    "platform": 4,
    "interaction": 5,
    "oauth": 5,
    # sign_in.py: complete_sign_in, the one seam that finishes a sign-in (DESIGN.md §4).
    "sign_in": 6,
    "logout": 6,
    # services.py: builds every service once; with create_app, the composition root.
    "services": 7,
    "web": 8,
    "": 9,  # oidc_link/__init__.py: create_app, the composition root
    "cli": 9,
    # cli_events.py: ``oidc-link events ...``, the operator's view of webhook deliveries.
    "cli_events": 9,
    # server.py: runs the app under granian (production) or werkzeug's reloader (--dev).
    "server": 9,
    "demo": 9,
}

# Which modules may import each outside library at run time.
OWNERS = {
    "flask": {"web", "demo"},
    "werkzeug": {"web", "demo", "cli", "server"},
    "granian": {"server"},
    "redis": {"store", "cli"},
    "fakeredis": {"store"},
    # store/command_packer.py: packs commands with hiredis, redis-py's optional C speedup.
    "hiredis": {"store"},
    "cryptography": {"keys", "sealed"},
    "jwt": {"keys"},
    "authlib": {"oauth", "demo"},
    # oauth: private_key_jwt checks client assertions with Authlib's JOSE library.
    "joserfc": {"demo", "oauth"},
    # Link's API only: URLs a client's configuration names go through outbound.py, which
    # speaks http.client to the address it checked.
    "requests": {"link"},
    "prometheus_client": {"metrics"},
    # records.py: a record's JSON where orjson writes and reads what json would.
    "orjson": {"logs", "records"},
    # web/languages.py: the pages' catalogues, and numbers, dates and lists per language.
    "babel": {"web"},
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


# --- The shape rules of issue 15: module size, import cycles, one layer's modules apart. ---

# A module longer than this is doing more than one job; split it (DESIGN.md §2).
MAX_LINES = 400

# Modules allowed over MAX_LINES, by path under oidc_link/, each with why. An entry for a
# module that is gone or back under the limit fails, so the list only ever shrinks.
LONG_MODULES = {
    "keys.py": (
        "the one module that may touch private keys (OWNERS: cryptography, jwt): the rotation"
        " schedule, signing and backup all handle decrypted keys, and splitting them would"
        " spread private-key code over two modules"
    ),
}

# Today's import cycles, each a strongly connected set of modules, with why it stands. An
# entry that no longer matches a cycle exactly (broken, grown or shrunk) fails.
KNOWN_CYCLES: dict[frozenset[str], str] = {}

# Imports between two different top-level modules or packages of one layer, as (importer,
# imported) names in LAYERS, with why. A pair no longer imported fails.
SAME_LAYER_IMPORTS = {
    ("link", "metrics"): "link/measured.py times Link calls into the metrics",
    ("cli", "cli_events"): "`oidc-link events` is one of the command's subcommands",
    ("cli", "server"): "`oidc-link serve` starts the server; the command is the entry point",
    ("cli", "demo"): "`oidc-link demo` starts the demo; the command is the entry point",
    ("server", ""): "the server runs the app create_app() builds",
    ("demo", ""): "the demo runs the real app next to its sample RP",
}


def module_name(path: Path) -> str:
    """The dotted name ``import`` uses for a file: oauth/__init__.py is oidc_link.oauth."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_PATHS = {module_name(path): path for path in MODULES}


def shown_path(path: Path) -> str:
    """A module's path under oidc_link/, as the tables above spell it."""
    return path.relative_to(PACKAGE).as_posix()


def our_module(name: str) -> str | None:
    """The module of ours that ``name`` lives in (a module, or a name in one), if any."""
    while name and name not in MODULE_PATHS:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path: Path) -> dict[str, str]:
    return imports_in(path.read_text(), module_name(path), shown_path(path))


def imports_in(source: str, own: str, filename: str) -> dict[str, str]:
    """Every module of ours that module ``own`` imports, with where and how: at run time,
    inside a function, or under TYPE_CHECKING. Relative imports are resolved. ``from a import
    b`` is an edge to the module a.b when there is one, else to a; a package's __init__.py
    runs first but is not what the importer depends on, so it is no edge."""
    package = own if filename.endswith("__init__.py") else own.rpartition(".")[0]
    found: dict[str, str] = {}

    def add(target: str | None, node: ast.stmt, how: str) -> None:
        if target and target != own and target not in found:
            where = f"{filename}:{node.lineno}"
            found[target] = f"{where} ({how})" if how else where

    def visit(node: ast.AST, how: str) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for child in node.body:
                visit(child, "under TYPE_CHECKING")
            for child in node.orelse:
                visit(child, how)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not how:
            how = "inside a function"
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(our_module(alias.name), node, how)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in MODULE_PATHS else our_module(base), node, how)
        for child in ast.iter_child_nodes(node):
            visit(child, how)

    visit(ast.parse(source), "")
    return found


@functools.cache
def import_graph() -> dict[str, dict[str, str]]:
    """Each module of ours -> the modules of ours it imports -> where it does."""
    return {name: imports_of(path) for name, path in MODULE_PATHS.items()}


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[set[str]]:
    """Tarjan's algorithm: the sets of modules that can each reach every other one through
    imports. A set of more than one module is an import cycle."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def reach(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in order:
                reach(target)
                lowest[module] = min(lowest[module], lowest[target])
            elif target in on_stack:
                lowest[module] = min(lowest[module], order[target])
        if lowest[module] == order[module]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            components.append(component)

    for module in sorted(graph):
        if module not in order:
            reach(module)
    return components


def import_cycles() -> list[frozenset[str]]:
    return [frozenset(c) for c in strongly_connected(import_graph()) if len(c) > 1]


def describe_cycle(cycle: frozenset[str]) -> str:
    inside = [
        f"    {where} imports {target}"
        for module in sorted(cycle)
        for target, where in sorted(import_graph()[module].items())
        if target in cycle
    ]
    return f"import cycle among {', '.join(sorted(cycle))}:\n" + "\n".join(inside)


def layer_name(module: str) -> str:
    """The LAYERS entry a module belongs to: its top-level module or package under oidc_link."""
    return module.removeprefix("oidc_link").removeprefix(".").split(".")[0]


def shown(name: str) -> str:
    """A LAYERS name as a reader finds it: "" is oidc_link/__init__.py."""
    return name or "__init__"


def same_layer_imports() -> dict[tuple[str, str], list[str]]:
    """Imports between different LAYERS entries of one layer. Modules of one package (such
    as oauth/grants.py and oauth/claims.py) are related and may import each other; two
    top-level modules or packages of one layer are unrelated."""
    found: dict[tuple[str, str], list[str]] = {}
    for module, targets in sorted(import_graph().items()):
        for target, where in sorted(targets.items()):
            importer, imported = layer_name(module), layer_name(target)
            # A name missing from LAYERS is test_every_module_is_in_a_known_layer's to report.
            if importer == imported or not {importer, imported} <= LAYERS.keys():
                continue
            if LAYERS[importer] == LAYERS[imported]:
                found.setdefault((importer, imported), []).append(f"{where} imports {target}")
    return found


def test_no_module_is_longer_than_the_limit_unless_listed_with_a_reason() -> None:
    too_long = [
        f"oidc_link/{shown_path(path)} has {length} lines, over {MAX_LINES}: split it"
        f" into modules with one job each (DESIGN.md §2); only if it must stay whole, add it to"
        f" LONG_MODULES in tests/test_architecture.py with the reason"
        for path in MODULES
        if (length := len(path.read_text().splitlines())) > MAX_LINES
        and shown_path(path) not in LONG_MODULES
    ]
    assert not too_long, "\n".join(too_long)


def test_every_listed_long_module_is_still_over_the_limit() -> None:
    stale = []
    for name in LONG_MODULES:
        path = PACKAGE / name
        if not path.is_file():
            stale.append(f"oidc_link/{name} is gone: delete its LONG_MODULES entry")
        elif (length := len(path.read_text().splitlines())) <= MAX_LINES:
            stale.append(
                f"oidc_link/{name} has {length} lines, within {MAX_LINES}: delete its"
                " LONG_MODULES entry"
            )
    assert not stale, "\n".join(stale)


def test_there_is_no_import_cycle_but_the_listed_ones() -> None:
    """TYPE_CHECKING and in-function imports count: they hide a cycle, they do not break it."""
    new = [
        describe_cycle(cycle)
        + "\n  Break it by removing one of these imports: move what both sides need into a"
        " lower module, or pass the object in instead of importing its module. Only if it"
        " cannot be broken now, add the set to KNOWN_CYCLES in tests/test_architecture.py"
        " with the reason (and remove the old entry if this cycle grew from one)."
        for cycle in import_cycles()
        if cycle not in KNOWN_CYCLES
    ]
    assert not new, "\n".join(new)


def test_every_listed_import_cycle_still_exists_as_listed() -> None:
    cycles = import_cycles()
    stale = [
        f"KNOWN_CYCLES lists a cycle among {', '.join(sorted(listed))}, and there is none"
        " exactly so any more: delete the entry (if a smaller or larger cycle remains, the"
        " test above names it)."
        for listed in KNOWN_CYCLES
        if listed not in cycles
    ]
    assert not stale, "\n".join(stale)


def test_modules_of_one_layer_import_only_related_ones() -> None:
    unrelated = [
        f"{shown(importer)} and {shown(imported)} are both in layer {LAYERS[importer]},"
        f" and the first imports the second:\n"
        + "\n".join(f"    {site}" for site in sites)
        + "\n  A layer's modules do not import each other (DESIGN.md §3): move what it needs to"
        " a lower layer, or have services.py pass it in. Only if that cannot be done now, add"
        f" {(importer, imported)!r} to SAME_LAYER_IMPORTS in tests/test_architecture.py with"
        " the reason."
        for (importer, imported), sites in same_layer_imports().items()
        if (importer, imported) not in SAME_LAYER_IMPORTS
    ]
    assert not unrelated, "\n".join(unrelated)


def test_every_listed_same_layer_import_is_still_made() -> None:
    made = same_layer_imports()
    stale = [
        f"SAME_LAYER_IMPORTS lists {pair!r}, and no module of the first imports the second"
        f" within one layer any more: delete the entry."
        for pair in SAME_LAYER_IMPORTS
        if pair not in made
    ]
    assert not stale, "\n".join(stale)


def test_relative_in_function_and_type_checking_imports_are_edges_of_the_graph() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .grants import OpenIDCodeGrant\n"
        "from .. import clock\n"
        "if TYPE_CHECKING:\n"
        "    from oidc_link.oauth import Provider\n"
        "def build():\n"
        "    from oidc_link.link import sandbox\n"
    )

    found = imports_in(source, "oidc_link.oauth.claims", "oauth/claims.py")

    assert found == {
        "oidc_link.oauth.grants": "oauth/claims.py:2",
        "oidc_link.clock": "oauth/claims.py:3",
        "oidc_link.oauth": "oauth/claims.py:5 (under TYPE_CHECKING)",
        "oidc_link.link.sandbox": "oauth/claims.py:7 (inside a function)",
    }


def test_the_strongly_connected_sets_of_a_small_graph_are_its_cycles_and_lone_modules() -> None:
    graph = {
        "a": {"b": ""},
        "b": {"a": "", "c": ""},
        "c": {"d": ""},
        "d": {"e": ""},
        "e": {"c": ""},
        "f": {"a": ""},
    }

    components = strongly_connected(graph)

    assert sorted(sorted(c) for c in components) == [["a", "b"], ["c", "d", "e"], ["f"]]


# Issue 15 item 2: services.py is the composition root. The classes it builds are constructed
# nowhere else in the package; the /v1 SDK in client/ has classes of the same names, its own
# and unrelated.
ROOT = "services.py"
APART_FROM_THE_ROOT = ("client/",)


def built_by_the_root(source: str) -> frozenset[str]:
    """The classes the root builds: the types of Services' cached properties, and the
    classes build_services calls."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Services":
            names |= {
                item.returns.id
                for item in node.body
                if isinstance(item, ast.FunctionDef) and isinstance(item.returns, ast.Name)
            }
        if isinstance(node, ast.FunctionDef) and node.name == "build_services":
            names |= {
                call.func.id
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id[:1].isupper()
            }
    # A clock is a given part, not a service: the cli's commands read the time too.
    return frozenset(names - {"Services", "SystemClock"})


def constructions(source: str, classes: frozenset[str]) -> list[tuple[str, int]]:
    """Calls of one of ``classes`` (by name or as an attribute), with their line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            if name in classes:
                found.append((name, node.lineno))
    return sorted(found, key=lambda item: item[1])


def test_only_the_composition_root_constructs_a_service() -> None:
    classes = built_by_the_root((PACKAGE / "services.py").read_text())
    assert {"Provider", "SignIn", "Logout", "AccountLinks", "Idempotency"} <= classes
    built_elsewhere = [
        f"{shown_path(path)}:{line} builds {name}: only {ROOT} may"
        for path in MODULES
        if shown_path(path) != ROOT and not shown_path(path).startswith(APART_FROM_THE_ROOT)
        for name, line in constructions(path.read_text(), classes)
    ]
    assert not built_elsewhere, "\n".join(built_elsewhere)


def test_the_construction_check_finds_calls_by_name_and_by_attribute_only() -> None:
    source = "a = Accounts(store)\nb = platform.Sessions()\nc = Accountsy()\nd: Accounts\n"
    assert constructions(source, frozenset({"Accounts", "Sessions"})) == [
        ("Accounts", 1),
        ("Sessions", 2),
    ]


def test_authlib_hooks_read_declared_request_fields_not_getattr() -> None:
    """DESIGN.md §7, no hidden context: what rides on Authlib's request is declared on
    oauth/messages.py's AuthlibRequest, so no module of oauth/ reads it with getattr."""
    found = [
        f"{shown_path(path)}:{node.lineno}"
        for path in MODULES
        if shown_path(path).startswith("oauth/")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "getattr"
        and "request" in ast.unparse(node.args[0])
    ]
    assert not found, f"getattr on a request: {found}"


def test_no_module_defines_a_coroutine_function() -> None:
    """web/plain_flask.py's PlainFlask calls every view and hook (and every function handed
    to after_this_request) as a plain function, without Flask asking ``inspect`` whether it
    is a coroutine on every request: an ``async def`` anywhere would be called and never
    awaited."""
    coroutines = [
        f"{shown_path(path)}:{node.lineno} {node.name}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.AsyncFunctionDef)
    ]

    assert coroutines == []
