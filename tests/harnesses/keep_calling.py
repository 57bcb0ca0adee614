"""A harness that never stops by itself: it calls the gateway until refused, then writes its last reply.

Plain standard library (it starts in milliseconds, so tests can run hundreds of attempts); `--stream`
asks for server-sent events and reassembles the content from the chunks.
"""

import json
import os
import sys
import urllib.error
import urllib.request

stream = "--stream" in sys.argv
url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"}
with open(os.environ["MODELARB_TASK_FILE"]) as handle:
    messages = json.load(handle)["messages"]
body = {"model": "m", "messages": messages}
if stream:
    body.update(stream=True, stream_options={"include_usage": True})
last = ""
while True:
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if stream:
                parts = []
                for line in response:
                    data = line.decode().removeprefix("data:").strip()
                    if data and data != "[DONE]":
                        parts += [c["delta"].get("content") or "" for c in json.loads(data).get("choices", [])]
                last = "".join(parts)
            else:
                last = json.load(response)["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as error:
        if error.code in (402, 403):  # the gateway's final answers: budget spent, step limit, attempt over
            break
        raise
with open(os.environ["MODELARB_OUTPUT"], "w") as handle:
    handle.write(last)
