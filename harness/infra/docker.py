"""Is there a Docker engine to start containers on? (Both provisioning chains ask.)"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def docker_engine_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping (a docker CLI alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(timeout, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"
        log.debug("no Docker engine: %s", exc)
        return False
