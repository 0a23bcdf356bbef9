"""The ``oidc-link`` command: serve, demo, check-config, keys, webhooks and events."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from oidc_link.cli_events import add_events_command, events_command
from oidc_link.errors import ConfigError, StoreUnavailableError
from oidc_link.logs import configure_logging

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
    # Flags win over [server] in the configuration (see docs/configuration.md).
    serve.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: [server] port, 8000)")
    serve.add_argument("--workers", type=_positive, help="worker processes ([server] workers)")
    serve.add_argument("--threads", type=_positive, help="threads per worker ([server] threads)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="Flask's development server with the reloader; allows the sandbox and fakeredis",
    )
    serve.add_argument(
        "--allow-sandbox",
        action="store_true",
        help="production server with the sandbox Link network (staging, benchmarks)",
    )

    demo = commands.add_parser("demo", help="run the provider and a sample relying party")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="provider port")
    demo.add_argument("--rp-port", type=int, default=8001, help="sample relying party port")
    demo.add_argument(
        "--brand",
        action="store_true",
        help="give the shop an accent colour and privacy and terms links on its sign-in pages",
    )

    check = commands.add_parser("check-config", help="report every problem in a config file")
    check.add_argument("file")
    check.add_argument(
        "--production",
        action="store_true",
        help="also apply what `serve` refuses in production (fakeredis, sandbox, http issuer, "
        "placeholders, weak secrets)",
    )
    check.add_argument(
        "--allow-sandbox", action="store_true", help="with --production: accept the sandbox"
    )

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

    webhooks = commands.add_parser("webhooks", help="tools for [[clients.webhooks]] endpoints")
    webhook_actions = webhooks.add_subparsers(dest="action", required=True)
    webhook_actions.add_parser("new-secret", help="print a new signing secret (whsec_...)")
    add_events_command(commands)

    hash_secret = commands.add_parser(
        "hash-secret",
        help="print the SHA-256 of an API secret key or a client secret (read from stdin)",
    )
    hash_secret.add_argument(
        "--new",
        nargs="?",
        const="live",
        choices=("live", "test", "client"),
        help="generate a new random secret: an API key (sk_live_... or, with 'test', "
        "sk_test_...) or, with 'client', a client secret",
    )

    args = parser.parse_args(argv)
    from oidc_link.config import log_settings_from_environment

    # From the environment for now; serve applies its configuration file's once read.
    early = log_settings_from_environment()
    configure_logging(early.format_or(default_log_format(args)), early.level)
    if args.command == "check-config":
        return check_config(
            args.file, production=args.production, allow_sandbox=args.allow_sandbox
        )
    if args.command == "keys":
        return keys_command(args)
    if args.command == "hash-secret":
        return hash_secret_command(args.new)
    if args.command == "webhooks":
        return new_webhook_secret_command()
    if args.command == "events":
        return events_command(args)
    if args.command == "demo":
        from oidc_link.demo import run_demo

        try:
            run_demo(args.host, args.port, args.rp_port, brand=args.brand)
        except (ValueError, OSError) as error:
            print(f"Cannot start the demo: {error}", file=sys.stderr)
            return 1
        return 0
    return serve_provider(args)


def check_config(path: str, *, production: bool = False, allow_sandbox: bool = False) -> int:
    from oidc_link.clock import SystemClock
    from oidc_link.config import load_settings
    from oidc_link.config.production import production_problems
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
    if production:
        problems = production_problems(settings, allow_sandbox=allow_sandbox)
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            print(f"{len(problems)} problem(s) found for production.")
            return 1
    print(
        f"{path}: OK ({len(settings.clients)} client(s), issuer {settings.issuer}, "
        f"Link mode {settings.link.mode})"
    )
    return 0


def new_webhook_secret_command() -> int:
    """``oidc-link webhooks new-secret``: a signing secret for one endpoint. It goes into the
    environment variable the endpoint's ``secret`` names, and to the platform's receiver."""
    from oidc_link.webhooks.signature import new_signing_secret

    print(new_signing_secret())
    return 0


def hash_secret_command(new: str | None) -> int:
    """``oidc-link hash-secret``: what goes in a client's ``api_keys`` or
    ``client_secret_sha256``; the secret itself is given to the platform or relying party and
    stored nowhere here."""
    from oidc_link.ids import digest, new_secret

    if new == "client":
        secret = new_secret(32)  # 43 base64url characters: 256 bits
        print(f"client secret: {secret}")
        print(f"client_secret_sha256 hash: {digest(secret)}")
        return 0
    if new:
        key = f"sk_{new}_{new_secret(32)}"
        print(f"secret key: {key}")
        print(f"api_keys hash: {digest(key)}")
        return 0
    key = sys.stdin.readline().strip()
    if not key:
        print("Give the secret on standard input (or use --new).", file=sys.stderr)
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


def serve_provider(args: argparse.Namespace) -> int:
    """``oidc-link serve``: the production server, unless ``--dev``."""
    import redis

    from oidc_link.config import load_settings
    from oidc_link.config.production import production_problems
    from oidc_link.keys import KeyEncryptionError
    from oidc_link.server import (
        AddressInUseError,
        listen_from,
        run_development_server,
        run_production_server,
    )

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    configure_logging(settings.logs.format_or(default_log_format(args)), settings.logs.level)
    listen = listen_from(settings, args.host, args.port, args.workers, args.threads)
    problems = [] if args.dev else production_problems(settings, allow_sandbox=args.allow_sandbox)
    if problems:
        source = args.config or "configuration"
        lines = "\n".join(f"  {source}: {problem}" for problem in problems)
        print(
            f"Refusing to serve in production, {len(problems)} problem(s):\n{lines}\n"
            "(`oidc-link serve --dev` and `oidc-link demo` allow these for development.)",
            file=sys.stderr,
        )
        return 1
    if settings.is_sandbox and not args.dev:
        log.warning(
            "--allow-sandbox: serving with the sandbox Link network; made-up users sign in "
            "with codes written to the log. Never for real users."
        )
    try:
        if args.dev:
            return run_development_server(settings, listen)
        return run_production_server(settings, listen)
    except (redis.RedisError, StoreUnavailableError) as error:
        print(f"Cannot use Redis: {error}", file=sys.stderr)
        return 1
    except KeyEncryptionError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 1
    except AddressInUseError as error:
        print(f"Cannot listen: {error.strerror}", file=sys.stderr)
        return 1


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def default_log_format(args: argparse.Namespace) -> str:
    """JSON lines for a production server, which a log pipeline reads; text for a person
    at a terminal (the demo, ``--dev``, the operator's commands)."""
    if args.command == "serve" and not getattr(args, "dev", False):
        return "json"
    return "text"


if __name__ == "__main__":
    sys.exit(main())
