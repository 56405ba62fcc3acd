"""Realistic demo data: a Gas Town fleet's API responses over days of history.

Sessions of every role (town level: mayor, deacon, boot, dogs; per rig: witness,
refinery, crew, polecats) run side by side, busier on weekdays and in working hours
and growing over time. Each event is one API response of one session: it carries its
interval, model, token counts priced at the model's list price, the bead being worked
on, and an `event_id`. Subagents are sessions of their own with `parent_session_id`.

Generation is vectorised with numpy (sessions first, then their turns in chunks), so
ten million events take well under a minute to generate; the same seed, size and end
time always give the same events. `write_demo` stores them through the real ingest path.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from gasometer.config import Settings
from gasometer.model import CostEvent

if TYPE_CHECKING:
    from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.demo")

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
DAY_US = 86_400 * _US
CHUNK_EVENTS = 25_000


class Price(NamedTuple):
    """List price in USD per million tokens (cache writes at the 5-minute rate)."""

    input: float
    output: float
    cache_write: float
    cache_read: float


PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price(5.0, 25.0, 6.25, 0.50),
    "claude-opus-4-5-20251101": Price(5.0, 25.0, 6.25, 0.50),
    "claude-opus-4-1-20250805": Price(15.0, 75.0, 18.75, 1.50),
    "claude-sonnet-4-5-20250929": Price(3.0, 15.0, 3.75, 0.30),
    "claude-haiku-4-5-20251001": Price(1.0, 5.0, 1.25, 0.10),
}
MODELS = tuple(PRICES)
OPUS_46, OPUS_45, OPUS_41, SONNET, HAIKU = range(len(MODELS))


class Role(NamedTuple):
    """How one role's sessions behave."""

    name: str
    weight: float
    median_events: float
    gap_s: float
    output_scale: float
    tier: int
    issue_share: float
    patrol: bool


ROLES = (
    Role("polecat", 0.36, 70, 6, 1.2, 0, 1.0, False),
    Role("crew", 0.10, 120, 10, 1.3, 0, 0.6, False),
    Role("witness", 0.12, 40, 25, 0.6, 1, 0.2, True),
    Role("refinery", 0.10, 45, 12, 0.7, 1, 0.7, False),
    Role("deacon", 0.09, 35, 30, 0.5, 1, 0.0, True),
    Role("mayor", 0.05, 160, 15, 1.0, 0, 0.1, False),
    Role("boot", 0.09, 10, 8, 0.4, 2, 0.0, True),
    Role("dog", 0.09, 25, 10, 0.6, 2, 0.0, True),
)
ROLE_NAMES = tuple(r.name for r in ROLES)
TOWN_ROLES = frozenset({"mayor", "deacon", "boot", "dog"})
SUBAGENT_PARENTS = frozenset({"polecat", "crew", "mayor", "refinery"})
TIER_MODELS = (
    (0.85, 0.15, 0.00),  # opus-class / sonnet / haiku: hands-on work
    (0.10, 0.70, 0.20),  # patrols and merges
    (0.00, 0.20, 0.80),  # boot and dogs
    (0.15, 0.35, 0.50),  # subagents
)
SUBAGENT_TIER = 3


class Rig(NamedTuple):
    """A project: its name, its beads prefix and its share of the work."""

    name: str
    prefix: str
    weight: float
    old_names: bool = False


RIGS = (
    Rig("gastown", "gt", 0.30),
    Rig("gasometer", "ga", 0.26),
    Rig("beads", "bd", 0.20),
    Rig("careers", "ca", 0.13, old_names=True),
    Rig("wyvern", "wy", 0.11),
)
POLECATS = (
    *("nux", "furiosa", "slit", "rictus", "toast", "capable", "dag", "cheedo", "angharad"),
    *("keeper", "ace", "morsov", "splendid", "valkyrie", "organic", "corpus", "scabrous"),
    *("doof", "warboy", "miss_giddy"),
)
CREW = ("max", "joe", "emma", "dave", "lin", "sam")
DOGS = ("rex", "fido", "bolt", "scout")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Sessions:
    """Sessions as parallel arrays (one entry per session); `parent` is -1 or an index."""

    role: Ints
    rig: Ints
    worker: Ints
    count: Ints
    start_us: Ints
    parent: Ints
    family: Ints

    def __len__(self) -> int:
        return len(self.count)

    def subset(self, index: Ints) -> Sessions:
        """The sessions at `index` (whole families only), parents re-pointed."""
        where = np.full(len(self), -1, dtype=np.int64)
        where[index] = np.arange(len(index))
        parent = self.parent[index]
        return Sessions(
            role=self.role[index],
            rig=self.rig[index],
            worker=self.worker[index],
            count=self.count[index],
            start_us=self.start_us[index],
            parent=np.where(parent >= 0, where[np.maximum(parent, 0)], -1),
            family=self.family[index],
        )


@dataclass
class Plan:
    """The sessions of a demo, sorted by start time, with their strings resolved."""

    sessions: Sessions
    model: Ints
    session_id: list[str]
    rig: list[str]
    role: list[str | None]
    worker: list[str | None]
    parent_id: list[str | None]
    issue: list[str | None]


class Turns(NamedTuple):
    """One chunk of events (API responses) as parallel arrays."""

    session: Ints
    started_us: Ints
    ended_us: Ints
    input: Ints
    output: Ints
    cache_creation: Ints
    cache_read: Ints
    cost: Floats


def generate_events(
    events: int, days: int, seed: int, end: datetime | None = None
) -> Iterator[list[CostEvent]]:
    """Yield `events` demo events over the `days` before `end` (default: now), in chunks.

    Deterministic for the same arguments; each chunk holds whole sessions, sessions
    come in order of their start.
    """
    if events <= 0:
        return
    end = datetime.now(UTC).replace(second=0, microsecond=0) if end is None else end
    end_us = _to_us(end)
    rng = np.random.default_rng(seed)
    plan = make_plan(events, max(days, 1), rng, end_us, seed)
    first_event = 0
    for lo, hi in _chunks(plan.sessions.count, CHUNK_EVENTS):
        turns = _turns(plan, lo, hi, rng, end_us)
        yield _cost_events(plan, turns, seed, first_event)
        first_event += len(turns.cost)


# -- sessions --------------------------------------------------------------------------


def make_plan(events: int, days: int, rng: np.random.Generator, end_us: int, seed: int) -> Plan:
    """Sessions holding exactly `events` turns, started over `days` before `end_us`."""
    mean = sum(r.weight * r.median_events for r in ROLES) * 1.4
    size = int(events / mean) + 16
    while True:
        every = _sessions(size, days, rng, end_us)
        if int(every.count.sum()) >= events:
            break
        size *= 2
    kept = every.subset(_take_events(every, events, rng))
    ordered = kept.subset(np.argsort(kept.start_us, kind="stable"))
    return _resolve(ordered, days, rng, end_us, seed)


def _sessions(n: int, days: int, rng: np.random.Generator, end_us: int) -> Sessions:
    """`n` main sessions and their subagents (mains first)."""
    role = rng.choice(len(ROLES), n, p=_normalised([r.weight for r in ROLES]))
    rig = rng.choice(len(RIGS), n, p=_normalised([r.weight for r in RIGS]))
    rig = np.where(np.isin(role, _role_ids(TOWN_ROLES)), -1, rig)
    pool = np.array([_pool_size(r.name) for r in ROLES])
    worker = (rng.random(n) * pool[role]).astype(np.int64)
    median = np.array([r.median_events for r in ROLES])[role]
    count = np.clip(rng.lognormal(np.log(median), 0.7), 3, 800).astype(np.int64)
    patrol = np.array([r.patrol for r in ROLES])[role]
    start = np.where(
        patrol, _start_times(n, days, rng, end_us, True), _start_times(n, days, rng, end_us, False)
    )
    eligible = np.isin(role, _role_ids(SUBAGENT_PARENTS))
    kids = np.where(eligible & (rng.random(n) < 0.3), rng.integers(1, 4, n), 0)
    parent = np.repeat(np.arange(n), kids)
    kid_count = np.clip(rng.lognormal(np.log(12), 0.6, len(parent)), 2, 120).astype(np.int64)
    step_us = (np.array([r.gap_s for r in ROLES])[role] + 15.0) * _US
    span = (count * step_us)[parent]
    kid_offset = (rng.uniform(0.05, 0.8, len(parent)) * span / 1000).astype(np.int64) * 1000
    kid_start = start[parent] + kid_offset
    return Sessions(
        role=np.concatenate([role, role[parent]]),
        rig=np.concatenate([rig, rig[parent]]),
        worker=np.concatenate([worker, worker[parent]]),
        count=np.concatenate([count, kid_count]),
        start_us=np.concatenate([start, np.minimum(kid_start, end_us - _US)]),
        parent=np.concatenate([np.full(n, -1), parent]),
        family=np.concatenate([np.arange(n), parent]),
    )


def _role_ids(names: frozenset[str]) -> list[int]:
    return [i for i, name in enumerate(ROLE_NAMES) if name in names]


def _pool_size(role: str) -> int:
    return {"polecat": len(POLECATS), "crew": len(CREW), "dog": len(DOGS)}.get(role, 1)


def _start_times(n: int, days: int, rng: np.random.Generator, end_us: int, patrol: bool) -> Ints:
    """Start times following the fleet's rhythm: weekdays, working hours, growth."""
    slots = np.arange(days * 24, dtype=np.int64)
    slot_us = end_us - days * DAY_US + slots * 3600 * _US
    hour = (slot_us // (3600 * _US)) % 24
    weekday = (slot_us // DAY_US + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if patrol:
        daily = 0.6 + 0.4 * np.exp(-(((hour - 14.5) / 6.0) ** 2))
        weekly = np.where(weekday >= 5, 0.8, 1.0)
    else:
        daily = 0.12 + np.exp(-(((hour - 14.5) / 4.0) ** 2))
        weekly = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.45, 0.35])[weekday]
    growth = 0.7 + 0.3 * slots / max(len(slots) - 1, 1)
    chosen = rng.choice(len(slots), n, p=_normalised(daily * weekly * growth))
    offset = (rng.random(n) * 3600 * 1000).astype(np.int64) * 1000
    return np.minimum(slot_us[chosen] + offset, end_us - _US)


def _take_events(every: Sessions, events: int, rng: np.random.Generator) -> Ints:
    """Indices of a random set of whole families holding exactly `events` turns.

    Families (a main session and its subagents) are kept or dropped together, so a
    subagent's parent is always present; the last session kept is cut short.
    """
    key = rng.random(int(every.family.max()) + 1)[every.family]
    order = np.lexsort((np.arange(len(every)), key))
    total = np.cumsum(every.count[order])
    last = int(np.searchsorted(total, events))
    keep = order[: last + 1]
    every.count[keep[-1]] -= int(total[last]) - events
    return np.sort(keep)


def _resolve(s: Sessions, days: int, rng: np.random.Generator, end_us: int, seed: int) -> Plan:
    """Models, names, beads and attribution strings of sorted sessions."""
    frac = (s.start_us - (end_us - days * DAY_US)) / (days * DAY_US)
    model = _models(s, frac, rng)
    issue = _issues(s, frac, rng)
    names = [
        _session_name(int(r), int(g), int(w))
        for r, g, w in zip(s.role, s.rig, s.worker, strict=True)
    ]
    is_kid = (s.parent >= 0).tolist()
    salt = seed * 1_000_003
    session_id = [
        f"agent-{((salt + i) * 2_654_435_761) % 2**32:08x}" if kid else names[i]
        for i, kid in enumerate(is_kid)
    ]
    parent = s.parent.tolist()
    role_names = [ROLE_NAMES[r] for r in s.role.tolist()]
    workers = [_worker_name(r, w) for r, w in zip(role_names, s.worker.tolist(), strict=True)]
    return Plan(
        sessions=s,
        model=model,
        session_id=session_id,
        rig=["hq" if g < 0 else RIGS[g].name for g in s.rig.tolist()],
        role=[role_names[i] if kid else None for i, kid in enumerate(is_kid)],
        worker=[workers[i] if kid else None for i, kid in enumerate(is_kid)],
        parent_id=[session_id[p] if p >= 0 else None for p in parent],
        issue=[issue[p] if p >= 0 else issue[i] for i, p in enumerate(parent)],
    )


def _models(s: Sessions, frac: Floats, rng: np.random.Generator) -> Ints:
    """Opus, Sonnet or Haiku by role; which Opus depends on when the session ran."""
    tier = np.where(s.parent >= 0, SUBAGENT_TIER, np.array([r.tier for r in ROLES])[s.role])
    cumulative = np.cumsum(np.array(TIER_MODELS), axis=1)[tier]
    draw = rng.random(len(s))[:, None]
    family = (draw >= cumulative).sum(axis=1).clip(0, 2)
    late = rng.random(len(s))
    opus = np.where(
        frac < 0.2,
        np.where(late < 0.5, OPUS_41, OPUS_45),
        np.where(frac < 0.55, OPUS_45, np.where(late < 0.85, OPUS_46, OPUS_45)),
    )
    return np.select([family == 0, family == 1], [opus, SONNET], HAIKU).astype(np.int64)


def _issues(s: Sessions, frac: Floats, rng: np.random.Generator) -> list[str | None]:
    """Bead ids (`<prefix>-<5 base36>`); beads are worked on for a while, then closed."""
    share = np.array([r.issue_share for r in ROLES])[s.role]
    has = rng.random(len(s)) < share
    salt = int(rng.integers(0, 36**5))
    out: list[str | None] = [None] * len(s)
    for g in range(-1, len(RIGS)):
        members = np.flatnonzero(has & (s.rig == g))
        if not len(members):
            continue
        pool = max(25, len(members) // 4)
        index = np.rint(frac[members] * pool + rng.normal(0, 2, len(members)))
        index = index.clip(0, pool - 1).astype(np.int64)
        prefix = "hq" if g < 0 else RIGS[g].prefix
        for member, i in zip(members.tolist(), index.tolist(), strict=True):
            out[member] = f"{prefix}-{_base36((i * 2_654_435_761 + salt + g) % 36**5)}"
    return out


def _base36(value: int) -> str:
    digits = []
    for _ in range(5):
        value, rest = divmod(value, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits))


def _session_name(role: int, rig: int, worker: int) -> str:
    """The Gas Town session name of a main session."""
    name = ROLE_NAMES[role]
    if rig < 0:
        return f"hq-dog-{DOGS[worker]}" if name == "dog" else f"hq-{name}"
    r = RIGS[rig]
    head = r.name if r.old_names else r.prefix
    if name == "crew":
        return f"{head}-crew-{CREW[worker]}"
    if name == "polecat":
        polecat = POLECATS[worker]
        return f"{head}-polecat-{polecat}" if r.old_names else f"{head}-{polecat}"
    return f"{head}-{name}"


def _worker_name(role: str, worker: int) -> str:
    pools = {"polecat": POLECATS, "crew": CREW, "dog": DOGS}
    return pools[role][worker] if role in pools else role


# -- turns -----------------------------------------------------------------------------


def _chunks(counts: Ints, target: int) -> Iterator[tuple[int, int]]:
    """Ranges of whole sessions holding about `target` events each."""
    total = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = int(total[lo - 1]) if lo else 0
        hi = int(np.searchsorted(total, base + target)) + 1
        hi = min(max(hi, lo + 1), len(counts))
        yield lo, hi
        lo = hi


def _turns(plan: Plan, lo: int, hi: int, rng: np.random.Generator, end_us: int) -> Turns:
    """Every turn of sessions [lo, hi): tokens, cost and timing, vectorised."""
    s = plan.sessions
    count = s.count[lo:hi]
    n = int(count.sum())
    session = np.repeat(np.arange(lo, hi), count)
    heads = np.cumsum(count) - count
    first = np.zeros(n, dtype=bool)
    first[heads] = True
    role = s.role[session]

    scale = np.array([r.output_scale for r in ROLES])[role]
    output = np.clip(rng.lognormal(np.log(350 * scale), 1.0), 1, 16_000).astype(np.int64)
    later = np.clip(rng.lognormal(np.log(1200), 1.2, n), 0, 30_000)
    creation = np.where(first, rng.integers(8_000, 30_000, n), later).astype(np.int64)
    prompt_cache = rng.integers(0, 15_000, hi - lo)
    context = _within(np.cumsum(creation) - creation, heads, count) + np.repeat(prompt_cache, count)
    compacted = 20_000 + (context - 20_000) % 130_000
    read = np.where(context > 150_000, compacted, context)
    read = np.where(first, np.repeat(prompt_cache, count), read)
    small = rng.random(n) < 0.9
    big = np.clip(rng.lognormal(np.log(1500), 1.0, n), 40, 10_000)
    input_ = np.where(small, rng.integers(1, 40, n), big).astype(np.int64)

    price = np.array(list(PRICES.values()))[plan.model[session]]
    cost = (
        input_ * price[:, 0] + output * price[:, 1] + creation * price[:, 2] + read * price[:, 3]
    ) / 1e6

    gap_s = np.where(
        s.parent[session] >= 0, 2.0, np.array([r.gap_s for r in ROLES])[role]
    ) * rng.lognormal(0.0, 1.0, n)
    speed = rng.uniform(35, 90, n)
    duration_s = 1.0 + rng.lognormal(np.log(1.5), 0.6, n) + output / speed
    gap = np.clip(gap_s, 0.3, 900) * 1000
    dur = duration_s * 1000
    gap_us, dur_us = gap.astype(np.int64) * 1000, dur.astype(np.int64) * 1000
    step = gap_us + dur_us
    offset = _within(np.cumsum(step) - step, heads, count)
    started = s.start_us[session] + offset + gap_us
    ended = started + dur_us
    over = np.maximum(ended[heads + count - 1] - end_us, 0)
    jitter = rng.integers(0, 1_800_000, hi - lo) * 1000  # still running: not all at `end`
    shift = np.repeat(np.where(over > 0, over + jitter, 0), count)
    return Turns(session, started - shift, ended - shift, input_, output, creation, read, cost)


def _within(running: Ints, heads: Ints, count: Ints) -> Ints:
    """A running sum over all rows turned into one that restarts at each session."""
    return running - np.repeat(running[heads], count)


def _cost_events(plan: Plan, turns: Turns, seed: int, first: int) -> list[CostEvent]:
    """The wire events of one chunk."""
    ids = turns.session.tolist()
    return [
        CostEvent(
            session_id=plan.session_id[i],
            cost_usd=cost,
            started_at=_time(started),
            ended_at=_time(ended),
            role=plan.role[i],
            worker=plan.worker[i],
            rig=plan.rig[i],
            model=MODELS[plan_model],
            input_tokens=inp,
            output_tokens=out,
            cache_creation_tokens=cw,
            cache_read_tokens=cr,
            issue=plan.issue[i],
            parent_session_id=plan.parent_id[i],
            event_id=f"demo-{seed}-{first + k}",
        )
        for k, (i, plan_model, started, ended, inp, out, cw, cr, cost) in enumerate(
            zip(
                ids,
                plan.model[turns.session].tolist(),
                turns.started_us.tolist(),
                turns.ended_us.tolist(),
                turns.input.tolist(),
                turns.output.tolist(),
                turns.cache_creation.tolist(),
                turns.cache_read.tolist(),
                turns.cost.tolist(),
                strict=True,
            )
        )
    ]


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _normalised(weights: object) -> Floats:
    array = np.asarray(weights, dtype=np.float64)
    return array / array.sum()


def _to_us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


# -- writing ---------------------------------------------------------------------------

MARKER = "demo.json"
"""The file that marks a data directory whose data all came from the demo."""


def mark_demo_store(data_dir: Path, seed: int) -> None:
    """Mark `data_dir` as a demo store (done when the demo wrote into an empty store)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"demo": True, "seed": seed, "written_at": stamp}
    (data_dir / MARKER).write_text(json.dumps(body) + "\n")


def is_demo_store(data_dir: Path) -> bool:
    """Whether this store's data came from the demo (the live demo town runs only there)."""
    return (data_dir / MARKER).is_file()


def write_demo(settings: Settings, events: int, days: int, seed: int, if_empty: bool) -> int:
    """Write demo events through the real ingest path, then flush and compact.

    Returns the number of events accepted. With `if_empty`, a store that already holds
    events is left alone (so `make demo` can be run again and again). A store that was
    empty is marked as a demo store (see `is_demo_store`).
    """
    from gasometer.runtime import Gasometer

    gm = Gasometer.open(settings)
    try:
        held = _events_held(gm)
        if if_empty and held:
            print(f"{settings.data_dir} already holds {held:,} events; not writing demo data")
            return 0
        accepted = _ingest_all(gm, generate_events(events, days, seed), events)
        gm.store.flush(force=True)
        gm.store.compact(full=True)
        gm.store.delete_retired(grace_s=0)
        if not held:
            mark_demo_store(gm.store.data_dir, seed)
    finally:
        gm.close()
    print(f"wrote {accepted:,} demo events into {settings.data_dir}")
    return accepted


def _events_held(gm: Gasometer) -> int:
    return sum(f.rows for f in gm.store.files() if f.dataset == "events") + (
        gm.store.pending_count()
    )


def _ingest_all(gm: Gasometer, chunks: Iterator[list[CostEvent]], total: int) -> int:
    """Ingest every chunk with a progress bar; returns events accepted."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} events/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    accepted = 0
    started = time.monotonic()
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("demo events", total=total, rate=0.0)
        for chunk in chunks:
            accepted += gm.ingest(chunk, default_source="demo").accepted
            rate = accepted / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=len(chunk), rate=rate)
    log.info("demo: %d events in %.1f s", accepted, time.monotonic() - started)
    return accepted
