"""`modelarb replay ...`: serve a market's recorded attempts as OpenAI-compatible providers."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import typer

from modelarb.cli import options
from modelarb.cli.output import console, console_err
from modelarb.errors import ServiceError

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
    help=f"File holding the key that signs outcomes (hex or text; default: ${KEY_ENV}). "
    "A missing file gets a new key; with neither, a new key is written to a temporary file.",
    dir_okay=False,
    show_default=False,
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
    2_000_000, "--max-tokens", min=1, help="max_tokens per call in the providers file written."
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
    app = create_replay_app(outcomes, key, seed=seed)
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
