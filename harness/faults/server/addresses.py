"""`host:port` strings as Toxiproxy (Go's net package) reads, binds and prints them.

The API reports a listener's resolved address (`127.0.0.1:41234`, `[::]:41234`) and answers bind
failures with Go's wording (`listen tcp 127.0.0.1:80: bind: permission denied`), so clients that
show these messages show the same thing for our server and the real one.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket


class AddressError(OSError):
    """An address that cannot be parsed, resolved, bound or dialled; `str()` is Go's text."""


def split_host_port(addr: str, op: str = "listen") -> tuple[str, int]:
    """Go's net.SplitHostPort plus port parsing; `op` prefixes errors (`listen`/`dial`, or ""
    for none, as net.ResolveTCPAddr words them)."""
    def fail(why: str, what: str = addr) -> AddressError:
        return AddressError(f"{op + ' tcp: ' if op else ''}address {what}: {why}")

    if addr == "":
        return "", 0  # Go: an empty address means any interface, any port
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        host, rest = addr[1:end], addr[end + 1:]
        if not rest.startswith(":"):
            raise fail("missing port in address")
        port_text = rest[1:]
    else:
        if ":" not in addr:
            raise fail("missing port in address")
        host, _, port_text = addr.rpartition(":")
        if ":" in host:
            raise fail("too many colons in address")
    if port_text.isdigit():
        port = int(port_text)
        if port > 65535:
            raise fail("invalid port", port_text)
        return host, port
    if port_text == "":
        return host, 0
    try:
        return host, socket.getservbyname(port_text, "tcp")
    except OSError:
        raise fail("unknown port", f"tcp/{port_text}") from None


def format_address(sockname: tuple[object, ...]) -> str:
    host, port = str(sockname[0]), int(sockname[1])  # type: ignore[call-overload]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_listen(listen: str) -> tuple[int, tuple[object, ...]]:
    """(address family, sockaddr) to bind for a Toxiproxy `listen` value."""
    host, port = split_host_port(listen)
    if host in ("", "::") and socket.has_ipv6:
        return socket.AF_INET6, ("::", port, 0, 0)
    if host in ("", "0.0.0.0"):
        return socket.AF_INET, ("0.0.0.0", port)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise AddressError(f"listen tcp: lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # Go prefers IPv4
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, sockaddr


async def resolve_tcp_addr(addr: str) -> str:
    """Go's `net.ResolveTCPAddr("tcp", addr).String()`: what Toxiproxy 2.12 compares a proxy's
    bound address with before deciding that an update changes it (proxy.go Differs).

    An empty host stays empty (`:P`, Go's nil IP), a name becomes its first address, IPv4
    preferred. Raises AddressError with Go's text (`lookup H: no such host`,
    `address 99999: invalid port`)."""
    host, port = split_host_port(addr, "")
    if host == "":
        return f":{port}"
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AddressError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # Go prefers IPv4
    return format_address(infos[0][4])


async def bind_listener(listen: str, backlog: int = socket.SOMAXCONN) -> socket.socket:
    """A listening, non-blocking socket for `listen` (SO_REUSEADDR, like Go on Unix)."""
    family, sockaddr = await resolve_listen(listen)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and sockaddr[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        shown = format_address(sockaddr)
        raise AddressError(f"listen tcp {shown}: bind: {_strerror(exc)}") from None
    return sock


def _strerror(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno).lower() if exc.errno != errno.EADDRINUSE \
            else "address already in use"
    return str(exc)
