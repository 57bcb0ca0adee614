"""`modelarb serve`, `modelarb db upgrade`, `modelarb keys create|revoke`: run and administer the broker."""

from __future__ import annotations

import shlex
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelarb.cli.output import console, console_err
from modelarb.errors import ServiceError

if TYPE_CHECKING:
    from modelarb.service.broker import BrokerSettings

DbOption = typer.Option(
    None,
    "--db",
    help="Database URL, e.g. sqlite:///PATH or postgresql://HOST/DB.",
    show_default="$MODELARB_DB, else an SQLite file in the user data directory",
)

db_app = typer.Typer(name="db", help="The broker's database.", no_args_is_help=True)
keys_app = typer.Typer(name="keys", help="Customer and admin API keys.", no_args_is_help=True)


def serve(
    plan: Path = typer.Option(..., "--plan", help="A plan written by `modelarb plan fit`.", dir_okay=False),
    providers: Path = typer.Option(..., "--providers", help="The providers file (TOML).", dir_okay=False),
    db: str | None = DbOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(8, "--workers", min=0, max=256, help="Task worker threads in this process."),
    discount: str = typer.Option(
        "0.05", "--discount", help="Discount on the market price the broker charges, as a fraction (0.05: 5 % below)."
    ),
    charging: str = typer.Option(
        "per_task", "--charging", help="How a task is charged when its request names no way: per_task or per_solution."
    ),
    quote_ttl: float = typer.Option(600.0, "--quote-ttl", min=1.0, help="How long a quote stays valid, in seconds."),
    task_hard_limit: float | None = typer.Option(
        None,
        "--task-hard-limit",
        help="Most a task may spend, in the plan's cost unit.",
        show_default="the sum of its caps",
    ),
    replay_key_file: Path | None = typer.Option(
        None,
        "--replay-key-file",
        help="File holding the key shared with a replay market.",
        show_default="$MODELARB_REPLAY_KEY",
    ),
    lease: float = typer.Option(
        30.0,
        "--lease",
        min=0.1,
        help="How long a task stays this process's without a heartbeat, in seconds; a task whose broker died is "
        "resumed after it.",
    ),
    agent_command: str | None = typer.Option(
        None,
        "--agent-command",
        help="The agent harness for providers whose attempt is `agent` (a command line; it "
        "gets OPENAI_BASE_URL, OPENAI_API_KEY, MODELARB_TASK_FILE and MODELARB_OUTPUT).",
        show_default=False,
    ),
    agent_timeout: float = typer.Option(
        600.0, "--agent-timeout", min=1.0, help="Wall-clock limit of an agent attempt, in seconds."
    ),
    agent_max_steps: int = typer.Option(50, "--agent-max-steps", min=1, help="Most model calls of an agent attempt."),
    agent_path: list[str] = typer.Option(
        [],
        "--agent-path",
        help="A host path the harness may read (its code, its tools); repeatable.",
        show_default=False,
    ),
    gateway_url: str | None = typer.Option(
        None,
        "--gateway-url",
        help="URL at which harnesses reach the broker's gateway.",
        show_default="/gateway/v1 at --host and --port",
    ),
    verifier_command: list[str] = typer.Option(
        [],
        "--verifier-command",
        help="NAME=COMMAND for the `command` verifier ({candidate}: the candidate's file); repeatable.",
        show_default=False,
    ),
) -> None:
    """Run the broker: the HTTP API (OpenAPI at /docs) and the workers that run tasks."""
    import uvicorn

    from modelarb.core.plan import Plan
    from modelarb.service.api.app import create_app
    from modelarb.service.broker import Broker, read_replay_key
    from modelarb.service.observability import configure_json_logs
    from modelarb.service.settings import load_providers
    from modelarb.service.store.engine import Store

    try:
        fraction = Decimal(discount)
    except InvalidOperation:
        raise ServiceError(f"--discount must be a fraction such as 0.05, got {discount!r}") from None
    settings = _broker_settings(
        discount=fraction,
        default_charging=charging,
        quote_ttl_s=quote_ttl,
        workers=workers,
        lease_s=lease,
        task_hard_limit=task_hard_limit,
        verifier_commands=_commands(verifier_command),
        agent_command=shlex.split(agent_command) if agent_command else [],
        agent_timeout_s=agent_timeout,
        agent_max_steps=agent_max_steps,
        agent_readonly_paths=agent_path,
        gateway_url=gateway_url or f"http://{_reachable(host)}:{port}/gateway/v1",
        replay_key=read_replay_key(replay_key_file),
    )
    configure_json_logs()
    broker = Broker(Store.open(db), Plan.load(plan), load_providers(providers), settings)
    console_err.print(
        f"modelarb broker on http://{host}:{port} · plan {broker.terms.plan_id} · "
        f"database {broker.store.engine.url.render_as_string()}"
    )
    uvicorn.run(create_app(broker), host=host, port=port, log_level="warning")


def _reachable(host: str) -> str:
    """The address a local harness uses for a server listening on `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _commands(items: list[str]) -> dict[str, list[str]]:
    commands = {}
    for item in items:
        name, sep, command = item.partition("=")
        if not sep or not name.strip() or not command.strip():
            raise ServiceError(f"--verifier-command must be NAME=COMMAND, got {item!r}")
        commands[name.strip()] = shlex.split(command)
    return commands


def _broker_settings(**values: Any) -> BrokerSettings:
    """Validated settings; a bad value is one ServiceError naming the option."""
    from pydantic import ValidationError

    from modelarb.service.broker import BrokerSettings

    try:
        return BrokerSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ServiceError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@db_app.command("upgrade")
def db_upgrade(db: str | None = DbOption) -> None:
    """Create the broker's tables, or migrate them to this version's schema."""
    from modelarb.service.store.engine import Store
    from modelarb.service.store.migrate import upgrade

    store = Store.open(db)
    revision = upgrade(store.engine)
    console.print(f"database {store.engine.url.render_as_string()} is at revision {revision}")


@keys_app.command("create")
def keys_create(
    customer: str | None = typer.Option(None, "--customer", help="The customer (created if new).", show_default=False),
    admin: bool = typer.Option(False, "--admin", help="An admin key instead of a customer's."),
    spending_limit: float | None = typer.Option(
        None,
        "--spending-limit",
        min=0.0,
        help="The customer's spending limit, in the broker's cost unit.",
        show_default="none",
    ),
    db: str | None = DbOption,
) -> None:
    """Create an API key and print it (only this once: the broker keeps only its hash)."""
    from modelarb.service.keys import create_key
    from modelarb.service.money import to_micro
    from modelarb.service.store.engine import Store
    from modelarb.service.store.migrate import upgrade

    if admin == (customer is not None):
        raise ServiceError("give exactly one of --customer NAME and --admin")
    store = Store.open(db)
    upgrade(store.engine)
    limit = None if spending_limit is None else to_micro(spending_limit)
    typer.echo(create_key(store, customer, spending_limit_micro=limit))


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="The key, or its id (the 16 hex digits after mk_)."), db: str | None = DbOption
) -> None:
    """Revoke a key: the broker refuses it from the next request on."""
    from modelarb.service.keys import revoke_key
    from modelarb.service.store.engine import Store
    from modelarb.service.store.migrate import upgrade

    store = Store.open(db)
    upgrade(store.engine)
    console.print(f"revoked key {revoke_key(store, key)}")
