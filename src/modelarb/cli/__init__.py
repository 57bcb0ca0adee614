"""The `modelarb` command line: thin commands over the library, errors as one message."""

from __future__ import annotations

import sys

from rich.text import Text

from modelarb.cli.app import app
from modelarb.cli.help_text import reflow_help
from modelarb.cli.output import console_err, layout
from modelarb.errors import ModelarbError


def main() -> None:
    """Console entry point: run the app; a ModelarbError becomes one message and exit code 2."""
    layout.wide = False
    reflow_help(app)
    try:
        app()
    except ModelarbError as exc:
        # plain text (a name may hold brackets), one line per line of the message (paths stay whole)
        console_err.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console_err.print("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
