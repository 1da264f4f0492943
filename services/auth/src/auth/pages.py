"""The small HTML page a verification link from a mail lands on."""

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto}}</style>
</head><body><h1>{title}</h1><p>{message}</p></body></html>"""


def verification_page(*, verified: bool, detail: str = "") -> str:
    if verified:
        return _PAGE.format(
            title="Email verified", message="Thank you: your email address is confirmed."
        )
    return _PAGE.format(title="Verification failed", message=escape(detail))
