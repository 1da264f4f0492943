#!/bin/sh
# compose's healthcheck for Traefik: healthy once Traefik's own answers (unknown path, rate
# limit, upstream down) are the contract's JSON. Those are pages fetched through the `pages`
# router of the internal entry point from `pages-pool` (dynamic.yml), which serves nothing
# until its first health check, up to an interval after every start: until then they are
# plain text, although `traefik healthcheck --ping` already passes.
exec wget -q -O /dev/null -T 4 http://127.0.0.1:8080/gateway-error/200
