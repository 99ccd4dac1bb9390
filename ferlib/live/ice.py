"""WebRTC ICE servers for the live camera, from the app's secrets or the environment.

With nothing configured the list is empty: the browser and the server then connect directly, which works on
localhost and the local network without reaching the internet (no STUN lookups). Behind NAT, e.g. on Streamlit
Community Cloud, a TURN server is needed; configure it in either form:

- `ICE_SERVERS`: a JSON list of RTCIceServer objects (`[{"urls": [...], "username": ..., "credential": ...}]`),
  or, in secrets.toml, an array of tables `[[ICE_SERVERS]]`;
- `TURN_URL` (comma-separated URLs, or in secrets.toml a list of them) with `TURN_USERNAME` and `TURN_CREDENTIAL`.

Each server is checked here, not in the browser (where a bad entry fails silently): every URL must start with
`stun:`, `turn:` or `turns:`, and a username or credential must be text.

Secrets take precedence over environment variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ferlib.errors import FerError


def ice_servers(secrets: Mapping[str, Any], environment: Mapping[str, str]) -> list[dict[str, Any]]:
    """The configured ICE servers (secrets first, then the environment), or [] when none are."""
    for source in (secrets, environment):
        servers = _from_source(source)
        if servers:
            return servers
    return []


def _from_source(source: Mapping[str, Any]) -> list[dict[str, Any]]:
    configured = source.get("ICE_SERVERS")
    if configured:
        if isinstance(configured, str):
            try:
                configured = json.loads(configured)
            except json.JSONDecodeError as error:
                # The value is not echoed: it holds the TURN credential, and the message is shown on the page.
                raise FerError(
                    f"Expected ICE_SERVERS as a JSON list; received text that is not JSON ({error.msg} at line "
                    f"{error.lineno}, column {error.colno})"
                ) from None
        return _normalised(configured)
    url = source.get("TURN_URL")
    if url:
        parts = url.split(",") if isinstance(url, str) else url
        # Text is split at commas; a TOML list's items are taken alike: stripped, the empty ones dropped.
        urls = (
            [part.strip() for part in parts if part.strip()]
            if isinstance(parts, list) and all(isinstance(part, str) for part in parts)
            else url
        )
        server: dict[str, Any] = {"urls": urls}
        for key in ("username", "credential"):
            if source.get(f"TURN_{key.upper()}"):
                server[key] = str(source[f"TURN_{key.upper()}"])
        return _normalised([server])
    return []


URL_SCHEMES = ("stun:", "turn:", "turns:")


def _normalised(servers: Any) -> list[dict[str, Any]]:
    """The servers as plain dicts, each with `urls` a stun:/turn:/turns: URL or a list of them; anything else is
    refused with a message that never shows a credential (it is displayed on the page)."""
    if isinstance(servers, Mapping):
        servers = [servers]
    if not isinstance(servers, list) or not all(isinstance(server, Mapping) and "urls" in server for server in servers):
        shape = type(servers).__name__ if not isinstance(servers, list) else "a list with items lacking 'urls'"
        raise FerError(f"Expected ICE_SERVERS as a list of objects with 'urls'; received {shape}")
    normalised = []
    for number, server in enumerate(servers, start=1):
        # Values are never echoed: a malformed URL may hold a password (user:password@host).
        urls = [server["urls"]] if isinstance(server["urls"], str) else server["urls"]
        if not isinstance(urls, (list, tuple)) or not urls:
            raise FerError(
                f"Expected ICE server {number}'s 'urls' as a URL or a non-empty list of URLs; received "
                + ("an empty list" if isinstance(urls, (list, tuple)) else f"a value of type {type(urls).__name__}")
            )
        for position, url in enumerate(urls, start=1):
            if not isinstance(url, str):
                raise FerError(
                    f"Expected ICE server {number}'s URL {position} as text; received a value of type "
                    f"{type(url).__name__}"
                )
            if not url.lower().startswith(URL_SCHEMES):
                raise FerError(
                    f"Expected ICE server {number}'s URL {position} to start with stun:, turn: or turns:; received "
                    "a URL that does not"
                )
        for key in ("username", "credential"):
            if key in server and not isinstance(server[key], str):
                raise FerError(
                    f"Expected ICE server {number}'s {key!r} as text; received a value of type "
                    f"{type(server[key]).__name__}"
                )
        normalised.append(dict(server))
    return normalised
