"""The ``oidc-link`` command: serve, demo, check-config and keys."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from oidc_link.errors import ConfigError, StoreUnavailableError

if TYPE_CHECKING:
    from oidc_link.keys import SigningKeys

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

    keys = commands.add_parser("keys", help="list, rotate, retire, back up the signing keys")
    keys.add_argument("--config", help="TOML file (default: $OIDC_LINK_CONFIG)")
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every published key and its schedule")
    rotate = actions.add_parser("rotate", help="schedule a new key (or replace a leaked one)")
    rotate.add_argument("--alg", default="RS256")
    rotate.add_argument(
        "--now", action="store_true", help="emergency: sign with a new key now, retire the old"
    )
    retire = actions.add_parser("retire", help="remove a key that no longer signs")
    # A kid is base64url and may start with '-': write `retire -- KID` for those.
    retire.add_argument("kid", help="the key id; put -- before it if it starts with '-'")
    export = actions.add_parser("export", help="write an encrypted backup of every key")
    export.add_argument("file")
    restore = actions.add_parser("import", help="restore keys missing from Redis")
    restore.add_argument("file")
    actions.add_parser("generate-kek", help="print a new random key-encryption key")

    hash_secret = commands.add_parser(
        "hash-secret", help="print the SHA-256 of an API secret key (read from stdin)"
    )
    hash_secret.add_argument(
        "--new",
        nargs="?",
        const="live",
        choices=("live", "test"),
        help="generate a new random key (sk_live_... or, with 'test', sk_test_...)",
    )

    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "keys":
        return keys_command(args)
    if args.command == "hash-secret":
        return hash_secret_command(args.new)
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
    from oidc_link.clock import SystemClock
    from oidc_link.config import load_settings
    from oidc_link.oauth.client_keys import ClientKeys

    try:
        settings = load_settings(path)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}")
        print(f"{len(error.problems)} problem(s) found.")
        return 1
    try:
        # Inline client keys are parsed by the oauth layer; a bad one stops start-up too.
        ClientKeys(settings.clients, SystemClock())
    except ConfigError as error:
        for problem in error.problems:
            print(f"{path}: {problem}")
        print(f"{len(error.problems)} problem(s) found.")
        return 1
    print(
        f"{path}: OK ({len(settings.clients)} client(s), issuer {settings.issuer}, "
        f"Link mode {settings.link.mode})"
    )
    return 0


def hash_secret_command(new: str | None) -> int:
    """``oidc-link hash-secret``: what goes in a client's ``api_keys``; the key itself is
    given to the platform and stored nowhere here."""
    from oidc_link.ids import digest, new_secret

    if new:
        key = f"sk_{new}_{new_secret(32)}"
        print(f"secret key: {key}")
        print(f"api_keys hash: {digest(key)}")
        return 0
    key = sys.stdin.readline().strip()
    if not key:
        print("Give the secret key on standard input (or use --new).", file=sys.stderr)
        return 1
    print(digest(key))
    return 0


def keys_command(args: argparse.Namespace) -> int:
    """``oidc-link keys ...``: the operator's handle on the signing-key lifecycle."""
    if args.action == "generate-kek":
        print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        return 0
    import redis

    from oidc_link.config import load_settings
    from oidc_link.keys import KeyEncryptionError
    from oidc_link.services import build_services

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if not settings.redis_url:
        print("No REDIS_URL: key commands need the Redis the servers use.", file=sys.stderr)
        return 1
    keys = build_services(settings).keys
    try:
        return _run_key_action(keys, args)
    except KeyEncryptionError as error:
        print(error, file=sys.stderr)
    except (KeyError, ValueError, OSError) as error:
        print(f"Cannot {args.action}: {error}", file=sys.stderr)
    except (redis.RedisError, StoreUnavailableError) as error:
        print(f"Cannot use Redis: {error}", file=sys.stderr)
    return 1


def _run_key_action(keys: SigningKeys, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_keys(keys)
    elif args.action == "rotate":
        new = keys.rotate(args.alg, immediately=args.now)
        if new is None:
            print(f"A next {args.alg} key is already scheduled; nothing to do.")
        else:
            print(f"New {new.alg} key {new.kid} signs from {_when(new.signs_from)}.")
        _print_keys(keys)
    elif args.action == "retire":
        retired = keys.retire(args.kid)
        print(f"Retired {retired.alg} key {retired.kid}.")
    elif args.action == "export":
        Path(args.file).write_text(json.dumps(keys.export_backup(), indent=2))
        print(f"Wrote an encrypted backup of every key to {args.file}.")
    elif args.action == "import":
        added = keys.import_backup(json.loads(Path(args.file).read_text()))
        print(f"Restored {added} key(s) missing from Redis.")
    return 0


def _print_keys(keys: SigningKeys) -> None:
    statuses = keys.statuses()
    print(f"{'STATE':9} {'ALG':6} {'KID':44} {'CREATED':20} {'SIGNS FROM':20} RETIRES AT")
    for status in statuses:
        key = status.key
        retires = _when(status.retires_at) if status.retires_at else "-"
        print(
            f"{status.state:9} {key.alg:6} {key.kid:44} {_when(key.created_at):20} "
            f"{_when(key.signs_from):20} {retires}"
        )


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def serve_provider(config: str | None, host: str, port: int) -> int:
    import redis
    from werkzeug.serving import make_server

    from oidc_link import create_app
    from oidc_link.config import load_settings
    from oidc_link.keys import KeyEncryptionError

    try:
        settings = load_settings(config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        app = create_app(settings)
    except (redis.RedisError, StoreUnavailableError) as error:
        print(f"Cannot use Redis: {error}", file=sys.stderr)
        return 1
    except KeyEncryptionError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
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


class _QueryStringFilter(logging.Filter):
    """Drop query strings from the request lines the server logs: they can carry an
    ``id_token_hint``, a ``login_hint`` (an email) or, at a client's callback, a code."""

    _QUERY = re.compile(r"\?[^\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._QUERY.sub("?…", record.getMessage())
        record.args = ()
        return True


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, _QueryStringFilter) for f in server_log.filters):
        server_log.addFilter(_QueryStringFilter())


if __name__ == "__main__":
    sys.exit(main())
