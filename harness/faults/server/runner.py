"""Run the server until SIGINT/SIGTERM: `authstate-harness proxy serve`, `-m harness.faults`.

Logs one line per API call and per proxy/connection event (logger `harness.faults.server`).
With `announce`, prints one JSON line on stdout once the API answers
(`{"url": ..., "pid": ..., "seed": ...}`), which is how the subprocess mode learns the port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys

from harness.faults.server.app import FaultProxyServer, read_config
from harness.faults.server.thread import new_event_loop

log = logging.getLogger("harness.faults.server")


@dataclasses.dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8474
    seed: int | None = None
    config: str | None = None
    proxy_metrics: bool = False
    announce: bool = False


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr, whatever the root logger says (`-v` may add more)."""
    logger = logging.getLogger("harness.faults.server")
    if any(getattr(h, "_fault_proxy", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._fault_proxy = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.getEffectiveLevel()) if logger.level else level)
    logger.propagate = False


def serve(options: ServeOptions) -> int:
    """Blocking: serve until a signal, then close every listener and connection; returns 0."""
    if options.config:
        read_config(options.config)  # fail on a bad file before binding anything
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_serve(options))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(options: ServeOptions) -> int:
    server = FaultProxyServer(seed=options.seed, proxy_metrics=options.proxy_metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(options.host, options.port)
        try:
            if options.config:
                proxies = await server.load_config(options.config)
                log.info("created %d prox%s from %s", len(proxies),
                         "y" if len(proxies) == 1 else "ies", options.config)
            if not options.seed:
                log.info("toxicity/jitter seed %d (pass --seed %d to repeat this run)",
                         server.seed, server.seed)
            if options.announce:
                print(json.dumps({"url": server.url, "pid": os.getpid(), "seed": server.seed}),
                      flush=True)
            await stop.wait()
            log.info("shutting down: closing every proxy and connection")
        finally:
            await server.close()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
