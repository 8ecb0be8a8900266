"""Chaos: steady Baileys-shaped traffic from 100 companies, a nemesis that breaks PostgreSQL,
then heal, settle, a final read straight from PostgreSQL, the checker and recovery figures.

- `catalog`: scenario names, what each proves, profiles and durations;
- `nemesis_api`: the contract for the things that break PostgreSQL (`harness.chaos.nemesis`);
- `values` / `workload` / `driver`: the traffic and its Jepsen-style history;
- `sampler`, `final_read`, `scenario` (the runner), `results` (section dict and figures).
"""
