"""`modelarb replay ...`: serve a market's recorded attempts as OpenAI-compatible providers, and check a plan live."""

from __future__ import annotations

import math
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from modelarb.cli import options
from modelarb.cli.output import console, console_err
from modelarb.errors import ServiceError

if TYPE_CHECKING:
    from modelarb.service.replay.check import LiveCheck

KEY_ENV = "MODELARB_REPLAY_KEY"

replay_app = typer.Typer(
    name="replay",
    help="The replay market: recorded attempts served as OpenAI-compatible providers for the broker.",
    no_args_is_help=True,
)


@replay_app.callback()
def replay() -> None:
    """The replay market: recorded attempts served as OpenAI-compatible providers for the broker."""


KeyFileOption = typer.Option(
    None,
    "--key-file",
    help="File holding the key that signs outcomes, in hex or text. A missing file gets a new key; with neither "
    "this nor the variable, a new key is written to a temporary file.",
    dir_okay=False,
    show_default=f"${KEY_ENV}",
)
SeedOption = typer.Option(0, "--seed", help="Seed of the draws: the order in which each task gets recorded attempts.")
HostOption = typer.Option("127.0.0.1", "--host", help="Address to listen on.")
PortOption = typer.Option(8090, "--port", help="Port to listen on (0: any free port).")
ProvidersFileOutOption = typer.Option(
    None,
    "--providers-file-out",
    help="Also write a broker providers file (TOML) pointing at this market.",
    dir_okay=False,
    show_default=False,
)
MaxTokensOption = typer.Option(
    2_000_000, "--max-tokens", min=1, help="The max_tokens of each call, in the providers file written."
)


def _write_new_key(path: Path | None) -> Path:
    key = os.urandom(32).hex()
    if path is None:
        handle, name = tempfile.mkstemp(prefix="modelarb-replay-", suffix=".key")
        with os.fdopen(handle, "w") as file:
            file.write(key + "\n")
        return Path(name)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(key + "\n")
    except OSError as exc:
        raise ServiceError(f"cannot write a new replay key to {path}: {exc.strerror}") from None
    return path


def replay_key(key_file: Path | None) -> bytes:
    """The key signing outcomes: `key_file`, else $MODELARB_REPLAY_KEY, else a new key written to a file (said where).

    A `key_file` that does not exist gets a new key, so the broker can be given the same file.
    """
    from modelarb.service.replay.market import key_from_text

    if key_file is not None and key_file.exists():
        try:
            return key_from_text(key_file.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ServiceError(f"cannot read the replay key from {key_file}: {exc}") from None
    if key_file is None and os.environ.get(KEY_ENV):
        return key_from_text(os.environ[KEY_ENV])
    written = _write_new_key(key_file)
    console_err.print(
        f"replay key: new key written to {written} (give the broker the same key: that file or ${KEY_ENV})",
        highlight=False,
    )
    return key_from_text(written.read_text())


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host") from None
    return sock


@replay_app.command("serve")
def serve(
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    unit: str | None = options.UnitOption,
    host: str = HostOption,
    port: int = PortOption,
    key_file: Path | None = KeyFileOption,
    seed: int = SeedOption,
    providers_file_out: Path | None = ProvidersFileOutOption,
    max_tokens: int = MaxTokensOption,
    turns: int = typer.Option(
        1,
        "--turns",
        min=1,
        help="Calls per recorded attempt for agent harnesses: a call with metadata.turn gets that turn of "
        "a conversation whose calls together bill the recorded cost, the last one carrying the outcome.",
    ),
) -> None:
    """Serve each provider's recorded attempts as an OpenAI-compatible model at http://HOST:PORT/v1.

    A call names the provider as `model` and the instance in `metadata.instance` (with `metadata.task`
    and `metadata.attempt` from the broker); it gets one recorded attempt, drawn without replacement
    within the task, ending in an outcome line signed with the key. Prices are 1 per million input and
    output tokens, so the tokens billed are the recorded cost in micro-units of the data's cost unit.
    """
    import uvicorn

    from modelarb.service.replay.market import create_replay_app, replay_providers_toml

    outcomes = options.market(data, providers, unit)
    key = replay_key(key_file)
    app = create_replay_app(outcomes, key, seed=seed, turns=turns)
    sock = _listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
    if providers_file_out is not None:
        text = replay_providers_toml(None, url, outcomes.providers, max_tokens)
        try:
            providers_file_out.write_text(text)
        except OSError as exc:
            sock.close()
            raise ServiceError(f"cannot write the providers file {providers_file_out}: {exc.strerror}") from None
        console_err.print(f"wrote {providers_file_out}", highlight=False)
    console.print(
        f"replay market: {outcomes.n_instances} instances × {', '.join(outcomes.providers)} "
        f"(costs in {outcomes.unit}) at {url}/v1",
        highlight=False,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


@replay_app.command("run")
def run(
    plan_path: Path = typer.Option(
        ..., "--plan", help="A plan written by `modelarb plan fit`.", dir_okay=False, show_default=False
    ),
    data: Path | None = options.DataOption,
    tasks: int = typer.Option(2000, "--tasks", min=1, help="How many tasks to buy."),
    concurrency: int = typer.Option(32, "--concurrency", min=1, max=1024, help="Customers with a task in flight."),
    broker: str | None = typer.Option(
        None, "--broker", help="URL of a running broker.", show_default="start one in this process"
    ),
    key: str | None = typer.Option(
        None, "--key", help="A customer's key for --broker.", show_default="$MODELARB_API_KEY"
    ),
    workers: int = typer.Option(8, "--workers", min=1, max=256, help="Worker threads of the broker started here."),
    db: str | None = typer.Option(
        None,
        "--db",
        help="Database URL of the broker started here.",
        show_default="a temporary SQLite file",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the instances drawn and of the replay market's draws."),
    agent_turns: int | None = typer.Option(
        None,
        "--agent-turns",
        min=1,
        help="Make every attempt an agent run through the broker's gateway, the "
        "market serving each recorded attempt as this many calls (a broker started here only).",
        show_default=False,
    ),
    json_path: Path | None = options.JsonOption,
) -> None:
    """Check a plan live: buy tasks from a broker serving it over the replay market, as customers would.

    Without --broker, starts in this process the replay market of the plan's providers over --data
    and a broker serving the plan over it (on loopback; a fresh SQLite database unless --db), and
    checks its ledger at the end. With --broker, sends the tasks to that broker with --key (or
    $MODELARB_API_KEY); the data still gives the instances.

    Each task solves an instance drawn at random (with replacement, seeded) from the data, verified
    by the replay market's signed outcome, charged per task at the quoted price. --concurrency
    customers each submit a task and poll it until it ends, then submit the next. Reports the realised
    solve rate (Wilson 95% interval), spend and revenue per task (normal 95% intervals) and margin
    (delta method) beside the plan's live predictions; tasks by state; throughput from the first
    submission to the last task seen final; latency percentiles from admission to the final state
    (the broker's clock).

    JSON keys: tasks, cost_unit, price (the quoted price per task); solve_rate, spend_per_task,
    revenue_per_task, margin: each {realised, ci95 (a list: low, high), predicted, inside_ci,
    predicted_on_drawn_instances (the plan's expectation on the very instances drawn; null for revenue
    and margin)} (margin also method: "delta"); states ({state: count}); wall_s; throughput_per_s;
    latency_s ({p50, p90, p99}); concurrency; seed; broker ("started" or its URL); same_data_as_fit;
    ledger ({balanced, problems}; balanced is null with --broker).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from modelarb.cli.output import write_json
    from modelarb.core.plan import Plan
    from modelarb.service.replay.check import TaskRecord, run_check

    if broker is None and key is not None:
        raise ServiceError("--key is the key of the broker given by --broker; without --broker a broker is started")
    if broker is not None and agent_turns is not None:
        raise ServiceError("--agent-turns configures the broker started here; drop it with --broker")
    if broker is not None and db is not None:
        raise ServiceError("--db is the database of the broker started here; drop it with --broker")
    fitted = Plan.load(plan_path)
    outcomes = options.market(data, ",".join(fitted.providers))
    progress = Progress(
        TextColumn("tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[solved]} solved"),
        TimeElapsedColumn(),
        console=console_err,
        transient=True,
    )
    bar = progress.add_task("tasks", total=tasks, solved=0, visible=False)
    solved = 0

    def done(record: TaskRecord) -> None:
        nonlocal solved
        solved += record.state == "solved"
        progress.update(bar, advance=1, solved=solved)

    with progress:
        result = run_check(
            fitted,
            outcomes,
            tasks=tasks,
            concurrency=concurrency,
            broker_url=broker,
            key=key,
            workers=workers,
            db=db,
            seed=seed,
            on_start=lambda _n: progress.update(bar, visible=True),
            on_done=done,
            agent_turns=agent_turns,
        )
    _print_check(result)
    write_json(json_path, result.to_dict())


def _print_check(result: LiveCheck) -> None:
    from modelarb.cli.output import money, table

    unit = result.cost_unit

    def share(value: float) -> str:
        return f"{value:.3f}" if math.isfinite(value) else "—"

    def cash(value: float) -> str:
        return money(value, unit) if math.isfinite(value) else "—"

    rows = []
    for name, figure, show in (
        ("solve rate", result.solve_rate, share),
        ("spend / task", result.spend, cash),
        ("revenue / task", result.revenue, cash),
        (f"margin ({result.margin_method} method)", result.margin, share),
    ):
        inside = "yes" if figure.covers else Text("no", style="bold red")
        on_draw = "" if figure.predicted_on_draw is None else show(figure.predicted_on_draw)
        interval = f"{show(figure.low)} – {show(figure.high)}"
        rows.append([name, show(figure.realised), interval, show(figure.predicted), inside, on_draw])
    table(
        f"live check: {result.tasks} tasks at {cash(result.price)} each ({result.broker} broker)",
        ["", "realised", "95% CI", "plan predicts", "plan inside CI", "plan on the drawn instances"],
        rows,
    )
    states = ", ".join(f"{state} {count}" for state, count in result.states.items())
    latency = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.latency_s.items())
    console.print(f"tasks: {states}", highlight=False)
    console.print(
        f"throughput: {result.throughput:.1f} tasks/s over {result.wall_s:.1f} s at concurrency {result.concurrency}; "
        f"latency (admitted to final): {latency}",
        highlight=False,
    )
    if not result.same_data_as_fit:
        console_err.print("note: the plan was fitted on other data than --data; its predictions may not apply")
    if result.ledger_balanced is not None:
        if result.ledger_balanced:
            console.print("ledger: balanced", highlight=False)
        else:
            console.print(f"[bold red]ledger: {len(result.ledger_problems)} problem(s)[/]")
            for problem in result.ledger_problems[:10]:
                console.print(f"  {problem}", highlight=False)
