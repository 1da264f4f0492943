"""Unit tests of the native gateway's configuration: templates, strict validation, rules, paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devstack.gateway import ConfigError, load_config
from devstack.gateway.__main__ import main
from devstack.gateway.config import HeadersConfig, RateLimitConfig
from devstack.gateway.durations import format_go_duration, parse_duration
from devstack.gateway.paths import BadRequest, prepare_path
from devstack.gateway.rules import RuleError, parse_rule
from devstack.gateway.template import TemplateError, render_template

DYNAMIC_YML = Path(__file__).resolve().parents[3] / "gateway" / "dynamic.yml"

MINIMAL = """
http:
  routers:
    api:
      entryPoints: [web]
      rule: "PathPrefix(`/api`)"
      middlewares: [secure]
      service: api
  middlewares:
    secure:
      headers:
        frameDeny: true
  services:
    api:
      loadBalancer:
        servers: [{url: "http://127.0.0.1:9000"}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dynamic.yml"
    path.write_text(textwrap.dedent(text))
    return path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text), {})
    return str(refused.value)


# --- the real gateway/dynamic.yml ----------------------------------------------------------------


def test_real_dynamic_yml_loads_with_compose_defaults() -> None:
    config = load_config(DYNAMIC_YML, {})
    assert {name: service.servers for name, service in config.services.items()} == {
        "auth": ("http://auth:8000",),
        "users": ("http://users:8000",),
        "items": ("http://items:8000",),
        "notifications": ("http://notifications:8000",),
    }
    assert all(service.pass_host_header for service in config.services.values())
    assert config.middlewares["auth-ratelimit"] == RateLimitConfig(average=10, period=1.0, burst=50)
    assert config.middlewares["cors"] == HeadersConfig(
        allow_origins=("http://localhost:3000", "http://localhost:5173"),
        allow_credentials=True,
        allow_methods=("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        allow_headers=("Authorization", "Content-Type", "If-Match", "X-Request-ID"),
        expose_headers=("ETag", "Location", "X-Request-ID", "Retry-After"),
        max_age=600,
        add_vary_header=True,
    )
    assert config.middlewares["security-headers"] == HeadersConfig(
        content_type_nosniff=True,
        frame_deny=True,
        referrer_policy="strict-origin-when-cross-origin",
    )
    routers = {router.name: router for router in config.routers}
    assert config.routers[0].name == "auth-ratelimited"  # tried first
    assert routers["auth-ratelimited"].middlewares == ("security-headers", "cors", "auth-ratelimit")
    for name in ("auth", "users", "items", "notifications"):
        assert routers[name].service == name
        assert routers[name].middlewares == ("security-headers", "cors")
        assert routers[name].rule.matches(f"/api/v1/{name}/anything", "GET")


def test_real_dynamic_yml_takes_upstreams_and_limits_from_the_environment() -> None:
    env = {
        "AUTH_UPSTREAM": "http://127.0.0.1:8101",
        "USERS_UPSTREAM": "http://127.0.0.1:8102",
        "ITEMS_UPSTREAM": "http://127.0.0.1:8103",
        "NOTIFICATIONS_UPSTREAM": "http://127.0.0.1:8104",
        "GATEWAY_AUTH_RATE_AVERAGE": "100",
        "GATEWAY_AUTH_RATE_BURST": "",  # exported but empty: the default applies, as with sprig
    }
    config = load_config(DYNAMIC_YML, env)
    assert config.services["notifications"].servers == ("http://127.0.0.1:8104",)
    assert config.middlewares["auth-ratelimit"] == RateLimitConfig(
        average=100, period=1.0, burst=50
    )


def test_router_priority_is_explicit_or_the_rule_length(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace(
            "  middlewares:\n    secure:",
            """    short-but-explicit:
      entryPoints: [web]
      rule: "PathPrefix(`/a`)"
      priority: 500
      service: api
    longer-rule:
      entryPoints: [web]
      rule: "PathPrefix(`/api/v1/longer`)"
      service: api
  middlewares:
    secure:""",
        ),
    )
    routers = load_config(path, {}).routers
    assert [(router.name, router.priority) for router in routers] == [
        ("short-but-explicit", 500),
        ("longer-rule", len("PathPrefix(`/api/v1/longer`)")),
        ("api", len("PathPrefix(`/api`)")),
    ]


def test_file_provider_references_are_accepted(tmp_path: Path) -> None:
    text = MINIMAL.replace("[secure]", "[secure@file]").replace("service: api", "service: api@file")
    config = load_config(write(tmp_path, text), {})
    assert config.routers[0].middlewares == ("secure",)
    assert config.routers[0].service == "api"


# --- templates ---------------------------------------------------------------------------------


def test_template_renders_env_and_default() -> None:
    text = 'a: {{ env "A" }}\nb: {{env "B"|default "fallback"}}\nc: {{ env "C" | default "x" }}\n'
    assert render_template(text, {"A": "1", "C": "set"}) == "a: 1\nb: fallback\nc: set\n"


@pytest.mark.parametrize(
    "construct",
    [
        '{{ env "A" | upper }}',
        '{{ default "x" (env "A") }}',
        '{{- env "A" }}',
        "{{ .Name }}",
        "{{ if true }}yes{{ end }}",
        "{{/* a comment */}}",
        "{{ env `A` }}",
        '{{ printf "%s" "x" }}',
    ],
)
def test_template_refuses_other_constructs(construct: str) -> None:
    with pytest.raises(TemplateError) as refused:
        render_template(f"first: line\nvalue: {construct}\n", {})
    message = str(refused.value)
    assert message.startswith("line 2: template construct")
    assert "is not supported by the native gateway" in message
    assert construct.split("}}")[0] in message  # the offending construct is named


def test_template_refuses_an_unterminated_action() -> None:
    with pytest.raises(TemplateError, match="line 3: unterminated template action"):
        render_template('a: {{ env "A" }}\nb: 1\nc: {{ env "C"\n', {})


def test_template_errors_stop_loading(tmp_path: Path) -> None:
    message = refusal(
        tmp_path, MINIMAL.replace('"http://127.0.0.1:9000"', '"{{ env "X" | lower }}"')
    )
    assert "template construct" in message


# --- strict validation -------------------------------------------------------------------------


def test_unsupported_option_is_refused_with_its_key_path(tmp_path: Path) -> None:
    message = refusal(
        tmp_path, MINIMAL.replace("frameDeny: true", "frameDeny: true\n        sslRedirect: true")
    )
    assert message.startswith(
        "http.middlewares.secure.headers.sslRedirect is not supported by the native gateway"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("http:", "tcp:\n  routers: {}\nhttp:"), "tcp is not supported by the native gateway"),
        (("http:", "udp:\n  services: {}\nhttp:"), "udp is not supported by the native gateway"),
        (("http:", "tls:\n  options: {}\nhttp:"), "tls is not supported by the native gateway"),
        (
            ("frameDeny: true", "customRequestHeaders: {}"),
            "secure.headers.customRequestHeaders is not",
        ),
        (
            ("service: api", "service: nowhere"),
            "http.routers.api.service refers to unknown service 'nowhere'",
        ),
        (
            ("[secure]", "[secure, missing]"),
            "http.routers.api.middlewares[1] refers to unknown middleware",
        ),
        (("[secure]", "[secure@docker]"), "refers to provider 'docker'; only @file is supported"),
        (
            ("entryPoints: [web]", "entryPoints: [websecure]"),
            "http.routers.api.entryPoints must be [web]",
        ),
        (
            ("entryPoints: [web]", "entryPoints: [web, admin]"),
            "http.routers.api.entryPoints must be [web]",
        ),
        (("      entryPoints: [web]\n", ""), "http.routers.api.entryPoints is required"),
        (("PathPrefix(`/api`)", "Host(`example.com`)"), "rule matcher Host is not supported"),
        (("PathPrefix(`/api`)", "PathPrefix(`api`)"), "does not start with a '/'"),
        (
            ("      service: api\n", "      service: api\n      tls: {}\n"),
            "http.routers.api.tls is not supported",
        ),
        (("127.0.0.1:9000", "127.0.0.1:9000/base"), "may only hold scheme, host and port"),
        (
            ("servers:", "sticky: {cookie: {}}\n        servers:"),
            "loadBalancer.sticky is not supported",
        ),
        (("loadBalancer:", "weighted:"), "http.services.api.weighted is not supported"),
        (("frameDeny: true", "frameDeny: yes please"), "frameDeny must be true or false"),
    ],
)
def test_unsupported_or_invalid_configuration_is_refused(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in MINIMAL
    assert expected in refusal(tmp_path, MINIMAL.replace(old, new, 1))


def test_a_middleware_type_it_does_not_implement_is_named(tmp_path: Path) -> None:
    text = MINIMAL.replace("headers:\n        frameDeny: true", "basicAuth:\n        users: []")
    assert refusal(tmp_path, text).startswith(
        "http.middlewares.secure.basicAuth is not supported by the native gateway"
    )


def test_rate_limit_only_on_the_peer_address(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "headers:\n        frameDeny: true",
        "rateLimit:\n"
        "        average: 5\n"
        "        sourceCriterion:\n"
        "          ipStrategy:\n"
        "            depth: 1",
    )
    assert "ipStrategy.depth must be 0" in refusal(tmp_path, text)
    header_based = text.replace("ipStrategy:\n            depth: 1", "requestHeaderName: X-User")
    assert "sourceCriterion.requestHeaderName is not supported" in refusal(tmp_path, header_based)


def test_servers_transport_timeouts_are_read(tmp_path: Path) -> None:
    text = MINIMAL.replace("servers: [", "serversTransport: quick\n        servers: [") + (
        "  serversTransports:\n"
        "    quick:\n"
        "      forwardingTimeouts:\n"
        "        dialTimeout: 2s\n"
        "        responseHeaderTimeout: 1m30s\n"
    )
    transport = load_config(write(tmp_path, text), {}).services["api"].transport
    assert transport.dial_timeout == 2.0
    assert transport.response_header_timeout == 90.0
    assert transport.idle_conn_timeout == 90.0  # Traefik's default


def test_invalid_yaml_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    assert "invalid YAML" in refusal(tmp_path, "http: [unclosed")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml", {})


def test_cli_exits_2_on_a_refused_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, MINIMAL.replace("frameDeny: true", "frameDeny: true\n        sslRedirect: true")
    )
    assert main(["--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"refusing {path}" in error
    assert "http.middlewares.secure.headers.sslRedirect is not supported" in error


def test_module_entry_point_exits_2_on_a_refused_configuration(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("rule:", "ruleSyntax: v2\n      rule:"))
    command = [sys.executable, "-m", "devstack.gateway", "--config", str(path), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)  # noqa: S603
    assert result.returncode == 2
    assert "http.routers.api.ruleSyntax is not supported by the native gateway" in result.stderr


# --- rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "path", "method", "expected"),
    [
        ("Path(`/a`)", "/a", "GET", True),
        ("Path(`/a`)", "/a/", "GET", False),
        ("PathPrefix(`/a`)", "/abc", "GET", True),  # a plain string prefix, like Traefik
        ('PathPrefix("/a")', "/a/b", "GET", True),
        ("Path(`/a`) || Path(`/b`)", "/b", "GET", True),
        ("Path(`/a`) || Path(`/b`) && Method(`POST`)", "/a", "GET", True),  # && binds tighter
        ("(Path(`/a`) || Path(`/b`)) && Method(`post`)", "/a", "GET", False),
        ("(Path(`/a`) || Path(`/b`)) && Method(`post`)", "/b", "POST", True),
        ("PathPrefix(`/a`) && !Path(`/a/private`)", "/a/private", "GET", False),
    ],
)
def test_rules_match_like_traefik(rule: str, path: str, method: str, expected: bool) -> None:
    assert parse_rule(rule).matches(path, method) is expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("Header(`X-A`, `1`)", "rule matcher Header is not supported"),
        ("PathPrefix(`/a`, `/b`)", "unexpected number of parameters; got 2, expected 1"),
        ("Path(`/a`) ||", "expected a matcher such as PathPrefix(`/api`), got end of rule"),
        ("(Path(`/a`)", "expected ')'"),
        ("Path(`/a`) Path(`/b`)", "unexpected 'Path'"),
        ("Path(/a)", "unexpected input"),
    ],
)
def test_malformed_or_unsupported_rules_are_refused(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rule(rule)


# --- request paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "upstream", "routing"),
    [
        (b"/api/v1/items", b"/api/v1/items", "/api/v1/items"),
        (b"/api/v1/items/", b"/api/v1/items/", "/api/v1/items/"),
        (b"/api/v1/items/../users//me/./", b"/api/v1/users/me/", "/api/v1/users/me/"),
        (b"/../../etc", b"/etc", "/etc"),
        (b"/%61pi/%7e/x%3aY", b"/api/~/x%3AY", "/api/~/x%3AY"),  # unreserved decoded, reserved kept
        (b"/caf%c3%a9", b"/caf%C3%A9", "/café"),
        (b"/a%2e%2e/b", b"/a../b", "/a../b"),
        (b"/%2e%2e/api", b"/api", "/api"),  # decoded dots are then sanitized, as in Traefik
    ],
)
def test_request_paths_are_normalized_and_sanitized(
    raw: bytes, upstream: bytes, routing: str
) -> None:
    path = prepare_path(raw)
    assert (path.upstream, path.routing) == (upstream, routing)


@pytest.mark.parametrize(
    "raw",
    [
        b"/a%2Fb",
        b"/a%2fb",
        b"/a%5Cb",
        b"/a%00",
        b"/a%3Bb",
        b"/a%25b",
        b"/a%3Fb",
        b"/a%23b",
        b"/a#b",
        b"/a%zz",
        b"/a%4",
    ],
)
def test_ambiguous_or_invalid_paths_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        prepare_path(raw)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1.0),
        ("2", 2.0),
        ("1s", 1.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("10us", 1e-5),
    ],
)
def test_durations_parse_like_traefik(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["fast", "1x", "-1s", -1, 1.5, True, "1s2", ""])
def test_invalid_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.1, "100ms"),
        (0.125, "125ms"),
        (1.25, "1.25s"),
        (60.5, "1m0.5s"),
        (3600, "1h0m0s"),
        (2e-6, "2µs"),
    ],
)
def test_durations_format_like_go(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text
