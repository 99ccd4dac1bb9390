"""WebRTC ICE servers for the live camera, from the app's secrets or the environment.

With nothing configured the list is empty: the browser and the server then connect directly, which works on
localhost and the local network without reaching the internet (no STUN lookups). Behind NAT, e.g. on Streamlit
Community Cloud, a TURN server is needed; configure it in either form:

- `ICE_SERVERS`: a JSON list of RTCIceServer objects (`[{"urls": [...], "username": ..., "credential": ...}]`),
  or, in secrets.toml, an array of tables `[[ICE_SERVERS]]`;
- `TURN_URL` (comma-separated URLs allowed) with `TURN_USERNAME` and `TURN_CREDENTIAL`.

Secrets take precedence over environment variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


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
                raise ValueError(
                    f"Expected ICE_SERVERS as a JSON list; received text that is not JSON ({error.msg} at line "
                    f"{error.lineno}, column {error.colno})"
                ) from None
        return _normalised(configured)
    url = source.get("TURN_URL")
    if url:
        urls = [part.strip() for part in str(url).split(",") if part.strip()]
        server: dict[str, Any] = {"urls": urls}
        if source.get("TURN_USERNAME"):
            server["username"] = str(source["TURN_USERNAME"])
        if source.get("TURN_CREDENTIAL"):
            server["credential"] = str(source["TURN_CREDENTIAL"])
        return [server]
    return []


def _normalised(servers: Any) -> list[dict[str, Any]]:
    if isinstance(servers, Mapping):
        servers = [servers]
    if not isinstance(servers, list) or not all(isinstance(server, Mapping) and "urls" in server for server in servers):
        shape = type(servers).__name__ if not isinstance(servers, list) else "a list with items lacking 'urls'"
        raise ValueError(f"Expected ICE_SERVERS as a list of objects with 'urls'; received {shape}")
    return [dict(server) for server in servers]
