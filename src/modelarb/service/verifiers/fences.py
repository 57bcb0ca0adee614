"""Finding the code in a reply: Markdown fenced code blocks (```lang ... ```)."""

from __future__ import annotations

import re
from collections.abc import Collection

_FENCE = re.compile(r"^[ \t]{0,3}```[ \t]*([\w+.#-]*)[^\n`]*\n(.*?)^[ \t]{0,3}```[ \t]*$", re.MULTILINE | re.DOTALL)


def first_block(reply: str, languages: Collection[str] = ()) -> str | None:
    """The body of the first closed fenced block tagged with one of `languages` (case-insensitive), else
    the first closed fenced block of any tag, else None. An unclosed block (a cut-off reply) does not count.
    """
    blocks = [(match.group(1).lower(), match.group(2)) for match in _FENCE.finditer(reply)]
    wanted = {language.lower() for language in languages}
    for language, body in blocks:
        if language in wanted:
            return body
    return blocks[0][1] if blocks else None
