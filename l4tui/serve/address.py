"""Where `l4tui serve` listens: `HOST:PORT`, or `[IPV6]:PORT` for an IPv6 address.

An IPv6 address has colons of its own, so it goes in brackets (as in URLs and
OpenSSH); one without them is refused rather than split at a guess (issue 14:
`--ssh [::1]:0` was taken apart wrongly and failed in the resolver).
"""

from __future__ import annotations

import ipaddress
import re

from machine.errors import ConfigError

_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}")  # a host name or an IPv4 address


def parse_address(text: str) -> tuple[str, int]:
    """The host and port of `--ssh TEXT`; ConfigError (one line) if it is not one."""
    usage = f"--ssh takes HOST:PORT or [IPV6]:PORT, not {text!r}"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(usage)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{usage}: {host!r} is not an IPv6 address") from None
        port_text = rest[1:]
    else:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ConfigError(f"{usage}: an IPv6 address goes in brackets, as [::1]:2222")
        if not _HOST.fullmatch(host):
            raise ConfigError(usage)
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ConfigError(f"{usage}: the port is 0..65535")
    return host, int(port_text)


def shown(host: str, port: int) -> str:
    """`host:port` as the log says it, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
