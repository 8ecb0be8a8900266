"""Chaos: steady Baileys-shaped traffic from 100 companies, a nemesis that breaks PostgreSQL,
then heal, settle, a final read straight from PostgreSQL, the checker and recovery figures.

- `catalog`: scenario names, what each proves, profiles and durations;
- `nemesis_api`: the contract between the runner and the things that break PostgreSQL;
  `nemesis` (one per scenario), `crash` (client-crash: a child process killed with SIGKILL),
  `pg_faults`, `owned_server`: their implementations;
- `values` / `workload` / `driver`: the traffic and its Jepsen-style history;
- `sampler` (status every 100 ms), `final_read`, `scenario` (the runner), `results` (the
  section dict and the figures the report and the gates read).
"""
