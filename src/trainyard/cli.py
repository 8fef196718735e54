"""Command line: `python -m trainyard serve` runs the local stack; `python -m trainyard keys
create|list|revoke` manages API keys for tenants."""

from __future__ import annotations

import argparse
import logging
import sys

from .bootstrap import bootstrap
from .settings import Settings


def serve(settings: Settings) -> None:
    import uvicorn

    from .api.app import create_app

    services = bootstrap(settings)
    key_file = services.settings.home / "api_key"
    key = services.tenants.ensure_default_key(settings.api_key, key_file)
    app = create_app(services, background_work=True)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Trainyard is running at {url}  (API docs: {url}/docs)", flush=True)
    print(f"Web console: {url}/console/  (sign in with the API key below)", flush=True)
    # `make run` prints the key: this banner goes to the terminal of whoever started the
    # local stack (never through logging), and is the only place a server prints it.
    source = "TRAINYARD_API_KEY" if settings.api_key else f"{key_file}, mode 0600"
    print(f"API key: {key}  (from {source})", flush=True)
    print(f"Data: {services.settings.home}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainyard")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the local stack (API, workers, webhooks)")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a tenant and print its API key")
    create.add_argument("--tenant", required=True, help="a name for the new tenant")
    keys.add_parser("list", help="list keys (hashes are never shown)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.command == "serve":
        serve(settings)
        return 0
    services = bootstrap(settings)
    if args.action == "create":
        tenant, record, key = services.tenants.create_tenant(args.tenant)
        print(f"tenant: {tenant.id} ({tenant.name})\nkey id: {record.id}\nAPI key: {key}")
        print("The key is shown once; only its hash is stored.")
    elif args.action == "list":
        for record in services.tenants.list_keys():
            state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
            print(f"{record.id}\t{record.tenant_id}\t{record.prefix}…\t{state}")
    elif args.action == "revoke":
        services.tenants.revoke(args.key_id)
        print(f"revoked {args.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
