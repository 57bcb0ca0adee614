"""Command help as flowing paragraphs: the terminal wraps them, not the docstring's line breaks."""

from __future__ import annotations

import inspect

import typer


def reflow(text: str) -> str:
    """Join the lines of each paragraph (paragraphs end at a blank line); a paragraph starting with \\b is kept."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


def reflow_help(app: typer.Typer) -> None:
    """Give every command of `app` and of its sub-apps its docstring reflowed as help (unless it has one)."""
    for command in app.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            command.help = reflow(command.callback.__doc__)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)
