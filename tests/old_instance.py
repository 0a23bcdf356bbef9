"""Serve an older oidc-link, extracted from git, as one instance of a rolling upgrade
(tests/test_rolling_upgrade.py starts it). Not a test module: a script run by a subprocess.

Usage: python tests/old_instance.py <extracted tree> <config.json>. Imports the package from
the tree (not the installed one), serves it over HTTP on a free loopback port with werkzeug,
prints the port on its first line, then every line the sandbox Link announces (the codes).
The tests reach it as the issuer's https host behind a TLS-ending proxy would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(tree: str, config_path: str) -> None:
    sys.path.insert(0, tree)
    from werkzeug.serving import make_server

    import oidc_link
    from oidc_link import create_app
    from oidc_link.config import settings_from_mapping
    from oidc_link.services import build_services

    if not Path(oidc_link.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"imported {oidc_link.__file__}, not the tree's package")
    given = json.loads(Path(config_path).read_text())
    settings = settings_from_mapping(given["config"], given["environ"], "old instance")
    services = build_services(settings, announce=lambda line: print(line, flush=True))
    app = create_app(settings, services)
    host = given["host"]

    def behind_proxy(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.url_scheme"] = "https"
        environ["HTTP_HOST"] = host
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, behind_proxy, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
