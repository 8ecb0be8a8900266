"""Load profiles: what each company does, how often, and how many companies are active when.

The traffic *shapes* come from reference/baileys-auth-state.md ("What traffic a store sees"); the
per-message operations are the chaos workload's (harness/chaos/workload.py), so chaos and load
measure the same Baileys traffic. Shapes, with their source:

- outgoing 1:1 message: `keys.get session` of the contact's devices, then one `keys.set` of
  their sessions ("one set with session for 2-5 devices");
- incoming 1:1 message: `keys.get session`, one session write; 30 % are `pkmsg` (first message
  of a new session) that also read `pre-key` + `identity-key` and delete the used pre-key;
  pre-keys are topped up by 5 when 5 or fewer are left ("later top-ups: 5 pre-keys when the
  server count is <= 5");
- group send, steady state: `sender-key-memory` + own `sender-key` read, then one rewrite of
  both ("1 sender-key + 1 sender-key-memory rewrite per send");
- group send, first time (group-heavy only): `sender-key` + `sender-key-memory` + ~100
  `session` upserts in one batch ("50 participants x 2 devices");
- incoming group message: one `sender-key` write ("1 sender-key write per message");
- creds save: the whole creds blob ("rewritten on every creds.update");
- reconnect: `load()` (creds); in reconnect-storm also every session of the company's contacts
  re-read (Baileys re-reads sessions lazily as messages arrive; a storm makes them all at once);
- first connect: creds + one `keys.set` of 812 pre-keys, then a `keys.get` of them ("one set of
  812 pre-keys, then a get of them").

The *ratios* between kinds are ours, not measured from a production log (none is published):
a business account answers about as many messages as it receives (outgoing 35 : incoming 30),
groups are a minority of its traffic (15 + 12), creds updates follow app-state syncs (6), and
reconnects are rare (2). Group-heavy inverts that for communities and broadcast-style
accounts. Each ratio is a parameter here; change it to match your own logs.

Pacing (closed model, the Locust default): each company waits uniform [0.5, 1.5] x 1 / rate
between messages, `message_rate_hz` per company. `--rate R` switches to an open model: messages
arrive at R per second in total whatever the latency (see harness/load/open_model.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.errors import ConfigError

STEADY_MIX: Mapping[str, int] = MappingProxyType({
    "outgoing": 35, "incoming": 30, "group_send": 15, "group_incoming": 12, "creds_save": 6,
    "reconnect": 2})
GROUP_HEAVY_MIX: Mapping[str, int] = MappingProxyType({
    "outgoing": 10, "incoming": 10, "group_send": 30, "group_first_send": 5,
    "group_incoming": 40, "creds_save": 4, "reconnect": 1})

Setup = str  # "steady": keys a company has after a while; "pair": Baileys' first connect


@dataclass(frozen=True)
class LoadProfile:
    """One profile: the mix, the pacing, the setup, and the shape of the user count over time.

    `shape`: None = Locust's own `-u/-r` (all companies ramp up at the spawn rate and stay);
    "ramp" = 0 -> N linearly over the first 80 % of the run; "spike" = N/10, then N for the
    middle 20 %, then N/10 again. `storm_every_s`: every company reconnects (creds + all its
    sessions) at the same wall-clock instants, this often.
    """

    name: str
    description: str
    mix: Mapping[str, int] = field(default_factory=lambda: STEADY_MIX)
    message_rate_hz: float = 2.0
    setup: Setup = "steady"
    full_pre_key_share: float = 0.05  # companies uploading 812 pre-keys at setup (steady)
    shape: str | None = None
    storm_every_s: float | None = None
    default_duration_s: float = 60.0


PROFILES: Mapping[str, LoadProfile] = MappingProxyType({p.name: p for p in (
    LoadProfile("steady", "messaging at 2 messages/s per company: session get + set per "
                "message, pre-key consumption and top-ups, sender-key rewrites, creds saves"),
    LoadProfile("first-connect", "every company pairs at once: creds, 812 pre-keys set and "
                "read back, then steady messaging", setup="pair"),
    LoadProfile("reconnect-storm", "every company restarts at the same instants (every 10 s): "
                "creds load and every session re-read, steady messaging between storms",
                storm_every_s=10.0),
    LoadProfile("group-heavy", "group traffic dominates: sender-key rewrites, first sends "
                "fanning out ~100 session upserts in one batch", mix=GROUP_HEAVY_MIX),
    LoadProfile("ramp", "steady messaging while the company count grows linearly from 0 to N",
                shape="ramp"),
    LoadProfile("spike", "N/10 companies, then all N for the middle fifth of the run, then "
                "N/10 again", shape="spike"),
    LoadProfile("soak", "steady messaging held for a long time (10 min by default): watch "
                "latency drift and memory", default_duration_s=600.0),
)})
DEFAULT_PROFILE = "steady"


def load_profile(name: str | None) -> LoadProfile:
    name = (name or DEFAULT_PROFILE).strip()
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown load profile {name!r}",
                          hint=f"choose from: {', '.join(PROFILES)}") from None


def shape_tick(profile: LoadProfile, elapsed_s: float, users: int, duration_s: float
               ) -> tuple[int, float] | None:
    """(target users, spawn rate) at `elapsed_s` for shaped profiles; None once over.

    Spawn rates are high (users/s): the shape, not the spawn rate, says how fast they come."""
    if elapsed_s >= duration_s:
        return None
    users = max(1, users)
    if profile.shape == "ramp":
        share = min(1.0, elapsed_s / max(0.8 * duration_s, 1e-9))
        return max(1, round(users * share)), float(users)
    if profile.shape == "spike":
        low = max(1, users // 10)
        inside = 0.4 * duration_s <= elapsed_s < 0.6 * duration_s
        return (users if inside else low), float(users)
    return users, float(users)
