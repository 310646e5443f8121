"""The SSRF guard for base URLs that users type in: only public http(s) hosts, unless allow-listed.

Operator URLs in the configuration file are trusted (a local vLLM is normal); a user's are not:
loopback, private, link-local (cloud metadata at 169.254.169.254), reserved and multicast
addresses are refused, for every address the name resolves to, and so are IPv6 addresses that
carry such an IPv4 address (IPv4-compatible, mapped, NAT64, 6to4, Teredo). Checked when the
URL is saved and again before each call, so a name that later resolves inward is still
refused; and calls to such URLs go through the users' transport (gateway.transport), which
checks each address a connection is about to reach, so a name that resolves one way for the
check and another for the call (DNS rebinding) is refused too.
"""
import ipaddress
import socket
import urllib.parse

# The IPv6 prefixes whose last 32 bits are an IPv4 address the packet is delivered to.
_LOW_32_BITS_IPV4 = tuple(ipaddress.ip_network(net) for net in (
    "::/96",               # IPv4-compatible (deprecated, still routed by some stacks)
    "::ffff:0:0:0/96",     # IPv4-translated (SIIT)
    "64:ff9b::/96",        # NAT64 well-known prefix
))
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")     # local-use NAT64: translates into the operator's network


class UnsafeURL(ValueError):
    """The URL may not be used; the message says why in words a user understands."""


def check_url(url, allowlist=()):
    """Return the URL when it is safe to call; raise UnsafeURL otherwise.

    `allowlist` holds host names or CIDR ranges the operator explicitly permits.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise UnsafeURL("This is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http:// and https:// URLs are allowed.")
    host = parts.hostname
    if not host:
        raise UnsafeURL("The URL has no host name.")
    if parts.username or parts.password:
        raise UnsafeURL("Credentials inside the URL are not allowed.")
    if host in allowlist:
        return url
    try:
        addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError, ValueError):
        raise UnsafeURL(f"The host '{host}' cannot be resolved.") from None
    for address in addresses:
        check_address(address, host, allowlist)
    return url


def check_address(address, host, allowlist=()):
    """Raise UnsafeURL unless the IP `address` (text), and any IPv4 address inside it, is public or allow-listed."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    for candidate in (ip, *_embedded_ipv4(ip)):
        if _inward(candidate) and not _allowed(candidate, allowlist):
            raise UnsafeURL(f"The host '{host}' points to a private, loopback, link-local or reserved address "
                            f"({candidate}); the gateway will not call it.")


def _inward(ip):
    return not ip.is_global or ip.is_multicast or ip in _LOCAL_NAT64


def _embedded_ipv4(ip):
    """The IPv4 addresses an IPv6 address leads to: 6to4, Teredo (server and client), and the prefixes above."""
    if ip.version == 4:
        return []
    found = [ip.sixtofour, *(ip.teredo or ())]
    if any(ip in net for net in _LOW_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def _resolve(host, port):
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _allowed(address, allowlist):
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
