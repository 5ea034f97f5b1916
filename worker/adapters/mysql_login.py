"""Whether a login as a MySQL 8 user from the worker can tell if its password is the one in DBOPS_PASSWORD.

`caching_sha2_password` and `sha256_password` store a salted hash the worker cannot recompute, so "unchanged" is
decided by logging in. But the server answers error 1045 both for a wrong password and when no account of that
name matches the client's host (an account for `localhost` or for a subnet the worker is not in): a refusal then
says nothing about the password. The login counts only when the server is sure to check the account dbops manages
(docs/worker-mysql.md, "How an unchanged password is decided"):

1. the worker's address as the server sees it (`USER()` of the admin session) matches one of the user's accounts
   by MySQL's rules (exact name or address, `%` and `_` wildcards, `address/netmask`, and on MySQL 8.0.23+
   `address/prefix`), and every account of that name that matches is one the spec lists (all get the same
   password); when the server reports a host name, only exact and `%` patterns are taken as certain;
2. that account's TLS requirement is met by the worker's connection (REQUIRE SSL needs TLS; REQUIRE X509 a
   client certificate; REQUIRE SUBJECT/ISSUER/CIPHER is never taken as met).

Otherwise the login is not tried, and the revision of the password dbops last set there decides.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from worker.adapters.base import ServerInfo
from worker.adapters.mysql_sql import is_mariadb

CIDR_SINCE = (8, 0, 23)  # MySQL accepts `address/prefix` host values from 8.0.23
_ADDRESS_PATTERN = re.compile(r"[0-9.%_]+|[0-9a-fA-F:%_]*:[0-9a-fA-F:%_]*")


def client_host(user_function: str | None) -> str | None:
    """The host part of `USER()` ('admin@10.1.2.3'), as the server sees the worker."""
    if not user_function or "@" not in user_function:
        return None
    return user_function.rsplit("@", 1)[1] or None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_matches(pattern: str, client: str, info: ServerInfo) -> bool | None:
    """Whether an account host `pattern` matches a client the server sees as `client`: True, False, or None when
    it cannot be told from here (a pattern on addresses while the server reports a host name)."""
    if pattern == "%" or pattern.lower() == client.lower():
        return True
    address = _address(client)
    if "/" in pattern:
        base, _, mask = pattern.partition("/")
        network_base = _address(base)
        if address is None or network_base is None:
            return None if address is None else False
        if mask.isdigit():
            if is_mariadb(info) or info.version_tuple < CIDR_SINCE:
                return False  # read as a literal host name, which no client has
            try:
                return address in ipaddress.ip_network(pattern, strict=False)
            except ValueError:
                return False
        netmask = _address(mask)
        if netmask is None or netmask.version != 4 or address.version != 4 or network_base.version != 4:
            return False
        return int(address) & int(netmask) == int(network_base)
    if "%" in pattern or "_" in pattern:
        if address is None and _ADDRESS_PATTERN.fullmatch(pattern):
            return None  # an address pattern, but the server reports the worker by name
        expression = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        return re.fullmatch(expression, client, re.IGNORECASE) is not None
    if address is None and _address(pattern) is not None:
        return None
    return False


def login_decides(
    accounts: dict[str, str],
    listed: Iterable[str],
    client: str | None,
    info: ServerInfo,
    *,
    tls: bool,
    client_certificate: bool,
) -> bool:
    """Whether a login refused with 1045 means the password differs. `accounts`: every account of the user name,
    host -> ssl_type ('' | 'ANY' | 'X509' | 'SPECIFIED'); `listed`: the hosts the spec manages."""
    if client is None:
        return False
    wanted = set(listed)
    verdicts = {host: host_matches(host, client, info) for host in accounts}
    if any(v is None for v in verdicts.values()):
        return False
    matching = [host for host, v in verdicts.items() if v]
    if not matching or any(host not in wanted for host in matching):
        return False
    for host in matching:
        ssl_type = accounts[host]
        if (
            ssl_type == "SPECIFIED"
            or (ssl_type == "X509" and not client_certificate)
            or (ssl_type and not tls)
        ):
            return False
    return True
