"""Who may use a server that listens on the network: loopback addresses need nothing, anything else a token,
compared in constant time. Shared by the HTTP API and the language server's TCP mode.
"""

from __future__ import annotations

import hmac
import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) can only be reached from this machine."""
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str, token: str) -> bool:
    """Whether a client's token is the server's (constant time, so the comparison leaks no prefix)."""
    return hmac.compare_digest(given.encode(), token.encode())
