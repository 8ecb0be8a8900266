"""Who talks to whom: companies paired into 1:1 conversations and groups of 3-8 members.

Each company is one WhatsApp account with one device, addressed by a LID jid (`<n>@lid`, as
Baileys 7 addresses contacts); its Signal address is `<n>_1.0` (the `session` and
`identity-key` ids peers store it under) and its sender key in a group `<group>::<n>_1::0`.
Pairs form a ring (company i talks to i+1 ... i+contacts/2), so every company has `contacts`
partners and every conversation is distinct; groups are random subsets, fixed by the seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LID_BASE = 10**14


def jid_of(index: int) -> str:
    return f"{LID_BASE + index}@lid"


def address(jid: str) -> str:
    """The Signal address Baileys stores a LID contact's session and identity key under."""
    return f"{jid.split('@', 1)[0]}_1.0"


def sender_key_id(group: str, jid: str) -> str:
    """The `sender-key` id of `jid`'s sender key in `group` (SenderKeyName.toString())."""
    return f"{group}::{jid.split('@', 1)[0]}_1::0"


@dataclass
class Conversation:
    id: str
    kind: str  # "direct" | "group"
    members: list[str]  # companies, the current roster for a group
    jid: str = ""  # the group jid (groups only)
    pool: list[str] = field(default_factory=list)  # everyone who may be in the group
    rekey_due: set[str] = field(default_factory=set)  # members who must make a new sender key

    def others(self, company: str) -> list[str]:
        return [m for m in self.members if m != company]


@dataclass
class Topology:
    jids: dict[str, str]
    conversations: list[Conversation]
    by_company: dict[str, list[Conversation]]

    @property
    def direct(self) -> list[Conversation]:
        return [c for c in self.conversations if c.kind == "direct"]

    @property
    def groups(self) -> list[Conversation]:
        return [c for c in self.conversations if c.kind == "group"]

    def to_doc(self) -> dict[str, Any]:
        """Who talks to whom, JSON-ready (ids and jids: no key material), for a process that
        carries these conversations on (`from_doc`)."""
        return {"jids": dict(self.jids),
                "conversations": [{"id": c.id, "kind": c.kind, "members": list(c.members),
                                   "jid": c.jid, "pool": list(c.pool)}
                                  for c in self.conversations]}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Topology:
        jids = {str(c): str(j) for c, j in doc["jids"].items()}
        conversations = [Conversation(str(c["id"]), str(c["kind"]), list(c["members"]),
                                      jid=str(c.get("jid") or ""), pool=list(c.get("pool") or ()))
                         for c in doc["conversations"]]
        by_company: dict[str, list[Conversation]] = {c: [] for c in jids}
        for conv in conversations:
            for member in conv.pool or conv.members:
                by_company[member].append(conv)
        return cls(jids, conversations, by_company)

    def pairs(self) -> list[tuple[str, str]]:
        """Every two companies that share a conversation (a group's members exchange sender
        keys 1:1), the first of each pair in company order: the one that starts the session."""
        order = {c: i for i, c in enumerate(self.jids)}
        found: set[tuple[str, str]] = set()
        for conv in self.conversations:
            for a in conv.pool or conv.members:
                for b in conv.pool or conv.members:
                    if order[a] < order[b]:
                        found.add((a, b))
        return sorted(found, key=lambda p: (order[p[0]], order[p[1]]))


def build_topology(companies: list[str], *, contacts: int, groups: int,
                   group_size: tuple[int, int], rng: random.Random) -> Topology:
    n = len(companies)
    if n < 2:
        raise ValueError("the signal workload needs at least 2 companies")
    jids = {c: jid_of(i) for i, c in enumerate(companies)}
    conversations: list[Conversation] = []
    seen: set[frozenset[str]] = set()
    for i, company in enumerate(companies):
        for k in range(1, max(1, contacts // 2) + 1):
            peer = companies[(i + k) % n]
            pair = frozenset((company, peer))
            if peer == company or pair in seen:
                continue
            seen.add(pair)
            conversations.append(Conversation(f"d{len(conversations)}", "direct",
                                              [company, peer]))
    low, high = group_size
    if n >= 3:
        for g in range(groups):
            size = rng.randint(min(low, n), min(high, n))
            members = rng.sample(companies, size)
            conversations.append(Conversation(
                f"g{g}", "group", list(members), jid=f"{120363000000000000 + g}@g.us",
                pool=list(members)))
    by_company: dict[str, list[Conversation]] = {c: [] for c in companies}
    for conv in conversations:
        for member in conv.members:
            by_company[member].append(conv)
    return Topology(jids, conversations, by_company)


def involved_keys(topology: Topology, conv: Conversation, sender: str, recipient: str, *,
                  pkmsg: bool, pre_key: int | None = None,
                  stage: str | None = None) -> list[tuple[str, str, str]]:
    """The (company, key type, key id) a decrypt of `sender`'s message by `recipient` involves,
    at both ends: what a failure of it is joined with in the checker's anomalies. A group
    message that failed at its sender-key step (`stage` "group") involves the sender keys; one
    that failed before, at its 1:1 part, and a 1:1 message involve the sessions (for a `pkmsg`
    also the identity key and the bundle's pre-key)."""
    if conv.kind == "group" and stage == "group":
        sk = sender_key_id(conv.jid, topology.jids[sender])
        return [(recipient, "sender-key", sk), (sender, "sender-key", sk),
                (sender, "sender-key-memory", conv.jid)]
    s_addr, r_addr = address(topology.jids[sender]), address(topology.jids[recipient])
    keys = [(recipient, "session", s_addr), (sender, "session", r_addr)]
    if pkmsg:
        keys.append((recipient, "identity-key", s_addr))
        if pre_key is not None:
            keys.append((recipient, "pre-key", str(pre_key)))
    return keys
