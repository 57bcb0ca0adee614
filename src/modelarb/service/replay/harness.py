"""The replay market's agent harness: talk to the gateway until a reply carries the signed outcome, then write it.

Run by the broker for agent attempts in a live check (`modelarb replay run --agent`): standard library
only, so an attempt starts in milliseconds. It reads the task from `$MODELARB_TASK_FILE`, calls
`$OPENAI_BASE_URL/chat/completions` with `$OPENAI_API_KEY`, answers each reply with "Go on.", and stops
at the outcome line, or when the gateway refuses for good (402, 403), writing its last reply to
`$MODELARB_OUTPUT`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from modelarb.service.replay.signing import PREFIX

MAX_CALLS = 100


def main() -> None:
    url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
    headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"}
    with open(os.environ["MODELARB_TASK_FILE"]) as handle:
        messages = json.load(handle)["messages"]
    last = ""
    for _ in range(MAX_CALLS):
        request = urllib.request.Request(url, json.dumps({"model": "replay", "messages": messages}).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                last = json.load(response)["choices"][0]["message"]["content"] or ""
        except urllib.error.HTTPError as error:
            if error.code in (402, 403):
                break
            raise
        if PREFIX in last:
            break
        messages = [*messages, {"role": "assistant", "content": last}, {"role": "user", "content": "Go on."}]
    with open(os.environ["MODELARB_OUTPUT"], "w") as handle:
        handle.write(last)


if __name__ == "__main__":
    main()
