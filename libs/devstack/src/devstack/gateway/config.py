"""Loading the Traefik dynamic configuration, strictly.

The native gateway implements a subset of Traefik. Every key it reads is listed here, and any
other key, middleware type, section or rule matcher is refused at start-up with its key path,
e.g. ``http.middlewares.cors.headers.sslRedirect is not supported by the native gateway``.
That way a change to gateway/dynamic.yml either works the same natively and under Traefik or
stops the native gateway loudly; the two never drift apart silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from devstack.gateway.durations import parse_duration
from devstack.gateway.rules import Rule, RuleError, parse_rule
from devstack.gateway.template import TemplateError, render_template

#: The only entry point the native gateway serves (Traefik's `web`, port 8000 in compose).
ENTRY_POINT = "web"


class ConfigError(ValueError):
    """The configuration is invalid, or uses something the native gateway does not implement."""


@dataclass(frozen=True)
class HeadersConfig:
    """Options of a Traefik `headers` middleware (CORS part and unrolled/secure part)."""

    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    add_vary_header: bool = False
    content_type_nosniff: bool = False
    frame_deny: bool = False
    referrer_policy: str = ""

    @property
    def has_cors(self) -> bool:
        """Traefik's HasCorsHeadersDefined: only then does the middleware answer preflights."""
        return bool(
            self.allow_origins
            or self.allow_credentials
            or self.allow_methods
            or self.allow_headers
            or self.expose_headers
            or self.max_age
            or self.add_vary_header
        )

    @property
    def has_secure(self) -> bool:
        """Traefik's HasSecureHeadersDefined, for the options supported here."""
        return self.content_type_nosniff or self.frame_deny or bool(self.referrer_policy)


@dataclass(frozen=True)
class RateLimitConfig:
    """Options of a Traefik `rateLimit` middleware keyed on the client's TCP address."""

    average: int  # requests per period; 0 disables limiting, as in Traefik
    period: float  # seconds
    burst: int


MiddlewareConfig = HeadersConfig | RateLimitConfig


@dataclass(frozen=True)
class TransportConfig:
    """``serversTransports.<name>.forwardingTimeouts``; defaults are Traefik's."""

    dial_timeout: float | None = 30.0
    response_header_timeout: float | None = None
    idle_conn_timeout: float | None = 90.0


@dataclass(frozen=True)
class ServiceConfig:
    """A `loadBalancer` service: its servers are used round-robin."""

    name: str
    servers: tuple[str, ...]  # base URLs such as http://127.0.0.1:8001
    pass_host_header: bool = True
    transport: TransportConfig = field(default_factory=TransportConfig)


@dataclass(frozen=True)
class RouterConfig:
    """A router on the `web` entry point."""

    name: str
    rule: Rule
    rule_text: str
    priority: int  # explicit, or the rule's length like Traefik
    middlewares: tuple[str, ...]  # outermost first
    service: str


@dataclass(frozen=True)
class GatewayConfig:
    """The validated configuration: routers are already in matching order."""

    routers: tuple[RouterConfig, ...]
    middlewares: Mapping[str, MiddlewareConfig]
    services: Mapping[str, ServiceConfig]


def load_config(path: Path | str, env: Mapping[str, str]) -> GatewayConfig:
    """Read, render and validate a dynamic configuration file, as Traefik's file provider would.

    Raises ``ConfigError`` for anything invalid or not implemented natively.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(render_template(text, env))
    except TemplateError as exc:
        raise ConfigError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}") from exc
    return _parse(document)


# --- parsing ----------------------------------------------------------------------------------


class _Node:
    """A YAML mapping together with its key path, for precise error messages."""

    def __init__(self, value: object, path: str) -> None:
        if value is None:  # e.g. `ipStrategy:` with nothing under it
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping")
        self.value: dict[str, Any] = value
        self.path = path

    def only(self, *supported: str) -> None:
        """Refuse every key that is not in ``supported``."""
        for key in self.value:
            if key not in supported:
                raise ConfigError(
                    f"{self.key_path(key)} is not supported by the native gateway"
                    f" (supported here: {', '.join(supported)})"
                )

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def child(self, key: str) -> _Node:
        return _Node(self.value.get(key), self.key_path(key))

    def children(self, key: str) -> dict[str, _Node]:
        """The named entries of a section such as ``http.routers``."""
        section = self.child(key)
        return {name: section.child(name) for name in section.value}

    def string(self, key: str, default: str | None = None) -> str:
        value = self.value.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key_path(key)} must be a non-empty string")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.value.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{self.key_path(key)} must be a list of strings")
        return tuple(value)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.value.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key_path(key)} must be true or false")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        """An integer; decimal strings are accepted too, as Traefik's parser does."""
        value = self.value.get(key, default)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key_path(key)} must be an integer")
        return value

    def duration(self, key: str, default: float) -> float:
        if key not in self.value:
            return default
        try:
            return parse_duration(self.value[key])
        except ValueError as exc:
            raise ConfigError(f"{self.key_path(key)}: {exc}") from exc


def _parse(document: object) -> GatewayConfig:
    if document is None:
        raise ConfigError("the configuration is empty")
    root = _Node(document, "")
    root.only("http")
    http = root.child("http")
    http.only("routers", "middlewares", "services", "serversTransports")

    transports = {
        name: _transport(node) for name, node in http.children("serversTransports").items()
    }
    services = {
        name: _service(name, node, transports) for name, node in http.children("services").items()
    }
    middlewares = {name: _middleware(node) for name, node in http.children("middlewares").items()}
    routers = [
        _router(name, node, services, middlewares)
        for name, node in http.children("routers").items()
    ]
    # Traefik tries routers by descending priority; the name breaks ties deterministically.
    routers.sort(key=lambda router: (-router.priority, router.name))
    return GatewayConfig(routers=tuple(routers), middlewares=middlewares, services=services)


def _router(
    name: str,
    node: _Node,
    services: Mapping[str, ServiceConfig],
    middlewares: Mapping[str, MiddlewareConfig],
) -> RouterConfig:
    node.only("entryPoints", "rule", "priority", "middlewares", "service")
    if "entryPoints" not in node.value:
        raise ConfigError(
            f"{node.key_path('entryPoints')} is required: without it Traefik attaches the router"
            f" to every entry point; use [{ENTRY_POINT}]"
        )
    if node.strings("entryPoints") != (ENTRY_POINT,):
        raise ConfigError(
            f"{node.key_path('entryPoints')} must be [{ENTRY_POINT}]: the native gateway serves"
            f" only the {ENTRY_POINT} entry point"
        )
    rule_text = node.string("rule")
    try:
        rule = parse_rule(rule_text)
    except RuleError as exc:
        raise ConfigError(f"{node.key_path('rule')}: {exc}") from exc
    refs = node.strings("middlewares")
    return RouterConfig(
        name=name,
        rule=rule,
        rule_text=rule_text,
        priority=node.integer("priority") or len(rule_text),
        middlewares=tuple(
            _reference(ref, f"{node.key_path('middlewares')}[{index}]", "middleware", middlewares)
            for index, ref in enumerate(refs)
        ),
        service=_reference(node.string("service"), node.key_path("service"), "service", services),
    )


def _reference(ref: str, path: str, kind: str, known: Mapping[str, object]) -> str:
    """Resolve ``name`` or ``name@file``; other providers do not exist natively."""
    name, _, provider = ref.partition("@")
    if provider and provider != "file":
        raise ConfigError(
            f"{path}: {ref!r} refers to provider {provider!r}; only @file is supported"
        )
    if name not in known:
        raise ConfigError(f"{path} refers to unknown {kind} {name!r}")
    return name


_MIDDLEWARE_TYPES = ("headers", "rateLimit")


def _middleware(node: _Node) -> MiddlewareConfig:
    if len(node.value) != 1:
        raise ConfigError(f"{node.path} must have exactly one middleware type")
    node.only(*_MIDDLEWARE_TYPES)
    if "headers" in node.value:
        return _headers(node.child("headers"))
    return _rate_limit(node.child("rateLimit"))


def _headers(node: _Node) -> HeadersConfig:
    node.only(
        "accessControlAllowOriginList",
        "accessControlAllowCredentials",
        "accessControlAllowMethods",
        "accessControlAllowHeaders",
        "accessControlExposeHeaders",
        "accessControlMaxAge",
        "addVaryHeader",
        "contentTypeNosniff",
        "frameDeny",
        "referrerPolicy",
    )
    config = HeadersConfig(
        allow_origins=node.strings("accessControlAllowOriginList"),
        allow_credentials=node.boolean("accessControlAllowCredentials"),
        allow_methods=node.strings("accessControlAllowMethods"),
        allow_headers=node.strings("accessControlAllowHeaders"),
        expose_headers=node.strings("accessControlExposeHeaders"),
        max_age=node.integer("accessControlMaxAge")
        if "accessControlMaxAge" in node.value
        else None,
        add_vary_header=node.boolean("addVaryHeader"),
        content_type_nosniff=node.boolean("contentTypeNosniff"),
        frame_deny=node.boolean("frameDeny"),
        referrer_policy=node.string("referrerPolicy") if "referrerPolicy" in node.value else "",
    )
    if not (config.has_cors or config.has_secure):
        raise ConfigError(f"{node.path} sets no header option (Traefik refuses it too)")
    return config


def _rate_limit(node: _Node) -> RateLimitConfig:
    node.only("average", "period", "burst", "sourceCriterion")
    source = node.child("sourceCriterion")
    source.only("ipStrategy")
    strategy = source.child("ipStrategy")
    strategy.only("depth")
    if strategy.integer("depth") != 0:
        raise ConfigError(
            f"{strategy.key_path('depth')} must be 0: only the TCP peer address is supported,"
            " never X-Forwarded-For"
        )
    average = node.integer("average")
    if average < 0:
        raise ConfigError(f"{node.key_path('average')} must not be negative")
    return RateLimitConfig(
        average=average,
        period=node.duration("period", default=1.0) or 1.0,  # Traefik: 0 means one second
        burst=max(node.integer("burst", default=1), 1),  # Traefik: below 1 means 1
    )


def _service(name: str, node: _Node, transports: Mapping[str, TransportConfig]) -> ServiceConfig:
    node.only("loadBalancer")
    balancer = node.child("loadBalancer")
    balancer.only("servers", "passHostHeader", "serversTransport")
    servers = balancer.value.get("servers")
    if not isinstance(servers, list) or not servers:
        raise ConfigError(f"{balancer.key_path('servers')} must be a non-empty list")
    urls = []
    for index, server in enumerate(servers):
        entry = _Node(server, f"{balancer.key_path('servers')}[{index}]")
        entry.only("url")
        urls.append(_server_url(entry.string("url"), entry.key_path("url")))
    transport = TransportConfig()
    if "serversTransport" in balancer.value:
        path = balancer.key_path("serversTransport")
        transport = transports[
            _reference(balancer.string("serversTransport"), path, "serversTransport", transports)
        ]
    return ServiceConfig(
        name=name,
        servers=tuple(urls),
        pass_host_header=balancer.boolean("passHostHeader", default=True),
        transport=transport,
    )


def _server_url(url: str, path: str) -> str:
    """Validate a server URL and return its ``scheme://host[:port]`` base."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}: {url!r} must be an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            f"{path}: {url!r} may only hold scheme, host and port (Traefik ignores a server path"
            " unless preservePath is set, which the native gateway does not support)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{path}: {url!r} has an invalid port") from exc
    return f"{parts.scheme}://{parts.netloc}"


def _transport(node: _Node) -> TransportConfig:
    node.only("forwardingTimeouts")
    timeouts = node.child("forwardingTimeouts")
    timeouts.only("dialTimeout", "responseHeaderTimeout", "idleConnTimeout")
    default = TransportConfig()
    # In Traefik a zero timeout means "no timeout".
    return TransportConfig(
        dial_timeout=timeouts.duration("dialTimeout", default.dial_timeout or 0) or None,
        response_header_timeout=timeouts.duration("responseHeaderTimeout", 0) or None,
        idle_conn_timeout=timeouts.duration("idleConnTimeout", default.idle_conn_timeout or 0)
        or None,
    )
