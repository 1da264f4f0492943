"""Small, engine-free readers for the deployment files: compose interpolation, Dockerfile
instructions, .dockerignore matching, and the effective environment of each service.

Only the parts of each format this repository uses are implemented, each as the real tool
defines it (compose-spec interpolation, the Dockerfile reference, moby's patternmatcher).
"""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SERVICES = ("auth", "users", "items", "notifications")


# ---- compose interpolation (compose-spec "Interpolation") ------------------------------------

_INTERPOLATION = re.compile(
    r"""
    \$(?:
        (?P<escaped>\$)
      | \{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)
          (?:(?P<operator>:?[-?+])(?P<argument>[^}]*))?\}
      | (?P<named>[A-Za-z_][A-Za-z0-9_]*)
    )
    """,
    re.VERBOSE,
)


class InterpolationError(ValueError):
    """A required variable (`${NAME:?message}`) is missing, as compose would report it."""


@dataclass(frozen=True)
class Reference:
    """One `${NAME...}` occurrence in the compose file."""

    name: str
    operator: str | None  # None, ":-", "-", ":?", "?", ":+", "+"
    argument: str | None

    @property
    def required(self) -> bool:
        return self.operator in (":?", "?")

    @property
    def default(self) -> str | None:
        return self.argument if self.operator in (":-", "-") else None


def references(text: str) -> Iterator[Reference]:
    for match in _INTERPOLATION.finditer(text):
        if match.group("escaped"):
            continue
        name = match.group("braced") or match.group("named")
        yield Reference(name, match.group("operator"), match.group("argument"))


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        operator, argument = match.group("operator"), match.group("argument") or ""
        value = env.get(name)
        unset_or_empty = value is None or value == ""
        if operator == ":-":
            return argument if unset_or_empty else value  # type: ignore[return-value]
        if operator == "-":
            return argument if value is None else value
        if operator in (":?", "?"):
            missing = unset_or_empty if operator == ":?" else value is None
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {argument}")
            return value  # type: ignore[return-value]
        if operator == ":+":
            return "" if unset_or_empty else argument
        if operator == "+":
            return "" if value is None else argument
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose interpolates every string value after parsing the YAML; keys are left alone."""
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def load_compose_raw() -> dict[str, Any]:
    """compose.yaml as YAML (anchors and merge keys resolved), before interpolation."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "compose.yaml must be a mapping"
    return document


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    return interpolate(load_compose_raw(), env)


_GO_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")
# `{{- if env "NAME" }}A{{- else }}B{{- end }}`: `{{-` trims the white space before it.
_IF_ENV = re.compile(
    r'\s*\{\{-\s*if\s+env\s+"(\w+)"\s*\}\}(.*?)\s*\{\{-\s*else\s*\}\}(.*?)\s*\{\{-\s*end\s*\}\}',
    re.DOTALL,
)
_ENV_WITH_DEFAULT = re.compile(r'\s*env\s+"(\w+)"\s*(?:\|\s*default\s+"([^"]*)"\s*)?')


def render_dynamic_config(text: str, env: Mapping[str, str]) -> dict[str, Any]:
    """gateway/dynamic.yml as Traefik reads it with `env`: its Go templates rendered first.

    Only the forms the file uses, `env "NAME"` optionally piped into `default "value"`, and
    `if env "NAME"` ... `else` ... `end`, are understood; anything else fails here, so a new
    template construct gets a test first.
    """
    text = _IF_ENV.sub(lambda m: m.group(2) if env.get(m.group(1)) else m.group(3), text)

    def render(match: re.Match[str]) -> str:
        call = _ENV_WITH_DEFAULT.fullmatch(match.group(1))
        assert call, f"unsupported template in gateway/dynamic.yml: {match.group(0)}"
        name, default = call.groups()
        return env.get(name) or default or ""

    document = yaml.safe_load(_GO_TEMPLATE.sub(render, text))
    assert isinstance(document, dict), "dynamic.yml must be a mapping"
    return document


def compose_text_references() -> list[Reference]:
    """Every variable compose.yaml interpolates (comments excluded: compose never reads them)."""
    found: list[Reference] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.extend(references(node))
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(load_compose_raw())
    return found


# ---- compose service helpers -----------------------------------------------------------------


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of compose's two forms, values as strings."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def depends_on_of(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):  # short form: no condition
        return {name: {} for name in depends}
    return {name: dict(spec or {}) for name, spec in depends.items()}


@dataclass(frozen=True)
class VolumeMount:
    source: str
    target: str
    read_only: bool


def volumes_of(service: Mapping[str, Any]) -> list[VolumeMount]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            options = parts[2].split(",") if len(parts) > 2 else []
            mounts.append(VolumeMount(source, target, "ro" in options))
        else:
            mounts.append(
                VolumeMount(
                    volume.get("source", ""), volume["target"], bool(volume.get("read_only"))
                )
            )
    return mounts


# ---- .env files --------------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines as compose reads them (the subset our files use: no quotes needed)."""
    values = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, value = stripped.partition("=")
        values[name.strip()] = value.strip()
    return values


def documented_optional_variables(text: str) -> dict[str, str]:
    """`# NAME=default` lines: optional variables documented with their default."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


# ---- Dockerfile --------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` flags, and the rest of the arguments."""
        flags: dict[str, str] = {}
        rest = self.arguments.strip()
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            name, _, value = token[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        return flags, rest


@dataclass
class Stage:
    base: str  # as written, e.g. ${PYTHON_IMAGE}
    resolved_base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if line.lstrip().startswith("#"):
            continue  # comments (and the parser directives) may sit inside continuations too
        if not buffer:
            if not line.strip():
                continue
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        joined = " ".join(part.strip() for part in buffer if part.strip())
        buffer = []
        keyword, _, arguments = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
    assert not buffer, "the Dockerfile ends inside a continuation line"
    return instructions


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Dockerfile variable substitution ($NAME, ${NAME}, ${NAME:-default})."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("named")
        value = variables.get(name, "")
        if match.group("operator") == ":-" and not value:
            return match.group("argument") or ""
        return value

    return _INTERPOLATION.sub(replace, text)


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions(path.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            _, rest = instruction.flags()
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], substitute(words[0], global_args), name))
        elif not stages:
            assert instruction.keyword == "ARG", f"only ARG may precede FROM: {instruction}"
            arg_name, _, default = instruction.arguments.partition("=")
            global_args[arg_name.strip()] = default.strip()
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


# ---- .dockerignore (moby/patternmatcher semantics) ---------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):  # "**/" : zero or more directories
                index += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", index)
            out += pattern[index : end + 1]
            index = end
        else:
            out += re.escape(char)
        index += 1
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class DockerIgnore:
    patterns: tuple[tuple[bool, re.Pattern[str]], ...]  # (exclusion, regex)

    @classmethod
    def load(cls, path: Path = DOCKERIGNORE) -> DockerIgnore:
        patterns = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            cleaned = str(PurePosixPath(line.lstrip("!").strip("/")))
            patterns.append((not negated, _pattern_regex(cleaned)))
        return cls(tuple(patterns))

    def excludes(self, relative_path: str) -> bool:
        """Whether the file is left out of the build context (a match on a parent counts)."""
        parts = PurePosixPath(relative_path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for exclusion, regex in self.patterns:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = exclusion
        return excluded


# ---- the repository's own scripts, imported by path ----------------------------------------


def load_module(relative_path: str) -> Any:
    """Import a script that is not part of any package (docker/, scripts/)."""
    import importlib.util
    import sys

    path = REPO_ROOT / relative_path
    name = "deploy_" + re.sub(r"\W", "_", relative_path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
