"""The SSRF guard for base URLs that users type in: only public http(s) hosts, unless allow-listed.

Operator URLs in the configuration file are trusted (a local vLLM is normal); a user's are not:
loopback, private, link-local (cloud metadata at 169.254.169.254), reserved and multicast
addresses are refused, for every address the name resolves to. Checked when the URL is saved
and again before each call, so a name that later resolves inward is still refused.
"""
import ipaddress
import socket
import urllib.parse


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
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise UnsafeURL(f"The host '{host}' cannot be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if getattr(address, "ipv4_mapped", None):
            address = address.ipv4_mapped
        if _allowed(address, allowlist):
            continue
        if not address.is_global or address.is_multicast:
            raise UnsafeURL(f"The host '{host}' points to a private, loopback, link-local or reserved address "
                            f"({address}); the gateway will not call it.")
    return url


def _allowed(address, allowlist):
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
