"""Local SMTP sink with Mailpit's HTTP API, for dev and tests without Docker.

In-process:   async with MailSink(smtp_port=0, http_port=0) as sink: ...
As a process: python -m devstack.mailsink --smtp-port 1025 --http-port 8025
"""

from devstack.mailsink.api import create_app
from devstack.mailsink.message import Message, parse_message
from devstack.mailsink.sink import MailSink
from devstack.mailsink.store import MessageStore

__all__ = ["MailSink", "Message", "MessageStore", "create_app", "parse_message"]
