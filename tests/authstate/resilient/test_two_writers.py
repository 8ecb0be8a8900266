"""Two store instances writing the same company across an outage (a deploy overlap): A loses
PostgreSQL and journals; B still reaches it and writes later. Replay is last-writer-wins by
acknowledgement time: A's replay must not overwrite B's newer rows, and counts them."""

from __future__ import annotations

import logging

import orjson
import pytest
from resilient_testkit import fetch_creds, fetch_keys


def _v(who: str, n: int) -> dict[str, object]:
    return {"by": who, "n": n, "secret": "SECRET-VALUE"}


async def test_replay_keeps_newer_rows_of_another_instance_and_counts_conflicts(
        pg_proxy, open_store, caplog: pytest.LogCaptureFixture) -> None:
    a = await open_store(pg_proxy.dsn)  # behind the proxy: will lose PostgreSQL
    b = await open_store(pg_proxy.direct_dsn)  # the other instance: keeps it
    await a.set_keys("acme", {"session": {"theirs-newer": _v("a", 0), "ours-newer": _v("a", 0),
                                          "deleted-by-us": _v("a", 0)}})
    await b.set_keys("acme", {"session": {"ours-newer": _v("b", 1)}})  # before A's outage write
    async with pg_proxy.faults.sever():
        await a.set_keys("acme", {"session": {"theirs-newer": _v("a", 1),
                                              "ours-newer": _v("a", 2),
                                              "deleted-by-us": None}})
        await a.write_creds_text("acme", '{"by": "a"}')
        assert a.last_source() == "journal"
        # B writes after A acknowledged (and journaled) its writes:
        await b.set_keys("acme", {"session": {"theirs-newer": _v("b", 2),
                                              "deleted-by-us": _v("b", 2)}})
        await b.write_creds_text("acme", '{"by": "b"}')
    with caplog.at_level(logging.WARNING, logger="harness.authstate.resilient"):
        assert await a.flush(timeout=30)
    rows = {k[1]: orjson.loads(v) for k, v in
            (await fetch_keys(pg_proxy.direct_dsn, "acme")).items()}
    assert rows["theirs-newer"] == _v("b", 2)  # B's later write survives A's replay
    assert rows["deleted-by-us"] == _v("b", 2)  # B rewrote it after A's delete
    assert rows["ours-newer"] == _v("a", 2)  # A's write was acknowledged after B's
    assert await fetch_creds(pg_proxy.direct_dsn, "acme") == '{"by": "b"}'
    assert a.status()["conflicts"] == 3
    warning = [r.getMessage() for r in caplog.records if "newer write" in r.getMessage()]
    assert warning and "acme/session/theirs-newer" in warning[0]
    assert "acme/creds" in warning[0]
    assert "SECRET-VALUE" not in caplog.text  # key refs only, never values
    # A's cache does not keep its own overwritten value either:
    assert await a.get_keys("acme", "session", ["theirs-newer"]) == {
        "theirs-newer": _v("b", 2)}
