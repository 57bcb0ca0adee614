"""A harness that lends its attempt to the test: it reports its gateway URL and token, then waits for the candidate.

Usage: relay.py PORT. It POSTs {"base_url", "api_key"} to http://127.0.0.1:PORT/attempts, polls the same
address for the candidate the test sends back, and writes it as its output. Standard library only.
"""

import json
import os
import sys
import time
import urllib.request

relay = f"http://127.0.0.1:{sys.argv[1]}/attempts"
lent = {"base_url": os.environ["OPENAI_BASE_URL"], "api_key": os.environ["OPENAI_API_KEY"]}
request = urllib.request.Request(relay, json.dumps(lent).encode(), {"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as response:
    ticket = json.load(response)["ticket"]
while True:
    with urllib.request.urlopen(f"{relay}/{ticket}", timeout=10) as response:
        answer = json.load(response)
    if answer.get("candidate") is not None:
        break
    time.sleep(0.05)
with open(os.environ["MODELARB_OUTPUT"], "w") as handle:
    handle.write(answer["candidate"])
