"""The ``oidc-link`` command: serve, demo and check-config."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from oidc_link.errors import ConfigError

log = logging.getLogger("oidc_link")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="oidc-link", description="OpenID Connect provider for sign-in with Link."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the provider")
    serve.add_argument("--config", help="TOML file (default: $OIDC_LINK_CONFIG)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    demo = commands.add_parser("demo", help="run the provider and a sample relying party")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="provider port")
    demo.add_argument("--rp-port", type=int, default=8001, help="sample relying party port")

    check = commands.add_parser("check-config", help="report every problem in a config file")
    check.add_argument("file")

    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "demo":
        from oidc_link.demo import run_demo

        try:
            run_demo(args.host, args.port, args.rp_port)
        except (ValueError, OSError) as error:
            print(f"Cannot start the demo: {error}", file=sys.stderr)
            return 1
        return 0
    return serve_provider(args.config, args.host, args.port)


def check_config(path: str) -> int:
    from oidc_link.config import load_settings

    try:
        settings = load_settings(path)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}")
        print(f"{len(error.problems)} problem(s) found.")
        return 1
    print(
        f"{path}: OK ({len(settings.clients)} client(s), issuer {settings.issuer}, "
        f"Link mode {settings.link.mode})"
    )
    return 0


def serve_provider(config: str | None, host: str, port: int) -> int:
    import redis
    from werkzeug.serving import make_server

    from oidc_link import create_app
    from oidc_link.config import load_settings

    try:
        settings = load_settings(config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        app = create_app(settings)
    except redis.RedisError as error:
        print(f"Cannot use Redis: {error}", file=sys.stderr)
        return 1
    # A threaded WSGI server; the production server choice is issue 7.
    server = make_server(host, port, app, threaded=True)
    log.info("oidc-link serving %s on http://%s:%d", settings.issuer, host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


if __name__ == "__main__":
    sys.exit(main())
