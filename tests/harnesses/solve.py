"""An agent harness as an ordinary script: the official openai client, calls in a loop, then its candidate.

It keeps the conversation going until a reply carries a replay outcome line, then writes that reply.
"""

import json
import os

from openai import OpenAI

client = OpenAI(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY come from the broker
with open(os.environ["MODELARB_TASK_FILE"]) as handle:
    messages = json.load(handle)["messages"]
for _ in range(20):
    reply = client.chat.completions.create(model="any-model-name", messages=messages)
    text = reply.choices[0].message.content or ""
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": "Go on."}]
    if "replay-outcome:" in text:
        with open(os.environ["MODELARB_OUTPUT"], "w") as handle:
            handle.write(text)
        break
