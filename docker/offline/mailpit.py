#!/usr/bin/env python3
"""/mailpit of the offline Mailpit image: `readyz` checks the API, no argument serves.

Serves on every interface (SMTP 1025, HTTP 8025), keeping MP_MAX_MESSAGES messages as
Mailpit does.
"""

import os
import sys
import urllib.request

from devstack.mailsink.__main__ import main

if __name__ == "__main__":
    if sys.argv[1:] == ["readyz"]:
        with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=4) as answer:
            sys.exit(0 if answer.status == 200 else 1)
    max_messages = os.environ.get("MP_MAX_MESSAGES", "500")
    every_interface = "0.0.0.0"  # noqa: S104 - in a container: the compose network reaches it
    sys.exit(
        main(
            ["--smtp-host", every_interface, "--http-host", every_interface]
            + ["--max-messages", max_messages]
        )
    )
