"""What an outage looks like from outside, through the real fault proxy: the error carries the
real cause, and the log has one line per change of state (down, still down every N s, back), not
a traceback per reconnect attempt (asyncpg's pool logged "Failed to restore the pool connection
floor; retrying" with a full traceback on every try)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from harness.authstate import PostgresAuthStore, StoreUnavailable


class FakeClock:
    """The store's clock for its outage log: the test says when time passes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and len(out) < 20:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


async def test_load_of_a_paired_company_while_down_names_the_refused_connection(pg_proxy) -> None:
    async with await PostgresAuthStore.open(pg_proxy.dsn) as store:
        await store.write_creds("acme", {"registered": True, "me": {"id": "1@s.whatsapp.net"}})
        async with pg_proxy.faults.sever():
            for _ in range(3):  # the first finds its pooled connection closed; later ones connect
                with pytest.raises(StoreUnavailable) as info:
                    await store.load("acme")
                err = info.value
                texts = " | ".join(f"{type(e).__name__}: {e}" for e in _chain(err))
                assert "released back to the pool" not in texts
                assert "refused" in err.message or "lost" in err.message or "reset" in err.message
        assert isinstance(_chain(err)[1], ConnectionRefusedError), texts  # last try: refused
        assert (await store.load("acme")).creds["registered"] is True


async def test_an_outage_logs_one_line_per_change_of_state(pg_proxy, caplog) -> None:
    clock = FakeClock()
    caplog.set_level(logging.DEBUG)
    async with await PostgresAuthStore.open(pg_proxy.dsn, outage_log_every_s=30.0,
                                            clock=clock) as store:
        await store.set_keys("acme", {"session": {"s": {"a": 1}}})
        caplog.clear()
        async with pg_proxy.faults.sever():
            for _ in range(8):  # 8 failed operations over 70 s of the store's clock
                with pytest.raises(StoreUnavailable):
                    await store.get_keys("acme", "session", ["s"])
                clock.now += 10.0
                await asyncio.sleep(0.3)  # room for the pool's own reconnect attempts
        await store.get_keys("acme", "session", ["s"])
        await store.get_keys("acme", "session", ["s"])  # nothing more to say
    records = [r for r in caplog.records if r.levelno >= logging.INFO
               and r.name.startswith(("asyncpg", "harness.authstate"))]
    assert [r.exc_info for r in records if r.exc_info] == []  # no tracebacks at all
    assert not [r.getMessage() for r in records if r.name.startswith("asyncpg")]
    lines = [r.getMessage() for r in records]
    assert len(lines) == 4, lines
    down, *still, back = lines
    # the cause as the operation met it: its pooled connection closed, or a refused connect
    assert "unavailable" in down and "127.0.0.1" in down
    assert any(cause in down for cause in ("refused", "lost", "reset"))
    assert [s.split(" for ")[1].split(" s")[0] for s in still] == ["30", "60"]
    assert all("refused the connection" in s for s in still)
    assert "available again after 80 s" in back and "8 operations failed" in back
