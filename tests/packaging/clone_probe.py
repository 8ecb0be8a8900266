"""Run by test_plugin.py inside the clone (not collected on its own: no test_ prefix)."""

import fixtures.postgres as suite_postgres
import harness.pytest_plugin as plugin


def test_plugin_and_suite_fixtures_are_each_registered_once(request):
    names = request.config.pluginmanager.list_name_plugin()
    assert [n for n, p in names if p is plugin] == ["harness.pytest_plugin"]
    assert [n for n, p in names if p is suite_postgres] == ["fixtures.postgres"]
    manager = request.config.pluginmanager.get_plugin("funcmanage")
    for name in ("authstate_dsn", "authstate_target", "authstate_chaos", "authstate_pg_proxy",
                 "pg_dsn", "target", "pg_proxy", "chaos_resources"):
        assert len(manager.getfixturedefs(name, request.node)) == 1, name
