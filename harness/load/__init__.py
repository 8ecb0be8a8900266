"""Load testing: Locust profiles of Baileys traffic for 100+ companies, exact latency.

Pure modules (importable anywhere, no locust): bridge (gevent only), hdr, open_model, profiles,
result, settings, traffic, runner, section, faults, bench. `locust_users` imports locust and is
imported only by the locustfile, inside a Locust process.
"""
