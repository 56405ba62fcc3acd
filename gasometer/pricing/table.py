"""The pricing table: model families, their dated rates, and the price of one request.

Prices live in `prices.toml` beside this module (data, not code). A request is priced at
the rates in force on its date, at long-context rates as a whole when its input exceeds
the family's threshold, with each cache-write part at its own TTL rate, times the fast
mode multiplier.
"""

from __future__ import annotations

import functools
import re
import tomllib
from datetime import date, datetime
from importlib import resources
from typing import NamedTuple

import msgspec

SYNTHETIC = "<synthetic>"
"""The model name Claude Code writes on API-error lines: zero usage, zero cost."""

PER_TOKEN = 1e-6
_SUFFIXES = re.compile(r"(\[1m\]|-v\d+(:\d+)?|@\d{8}|-\d{8}|-latest)$")


class Rates(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """USD per million tokens from `since` on; `long_*` apply above the threshold."""

    since: date
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    long_context_threshold: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    long_cache_write_5m: float | None = None
    long_cache_write_1h: float | None = None
    long_cache_read: float | None = None

    def standard(self) -> tuple[float, float, float, float, float]:
        """Input, output, 5m write, 1h write and cache read rates (per million)."""
        return (self.input, self.output, self.cache_write_5m, self.cache_write_1h, self.cache_read)

    def long(self) -> tuple[float, float, float, float, float]:
        """The long-context rates (the standard ones where a long rate is missing)."""
        std = self.standard()
        longs = (
            self.long_input,
            self.long_output,
            self.long_cache_write_5m,
            self.long_cache_write_1h,
            self.long_cache_read,
        )
        return tuple(s if v is None else v for s, v in zip(std, longs, strict=True))  # type: ignore[return-value]


class Family(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """A model family (e.g. Sonnet 4.5): the names it answers to and its rate periods."""

    name: str
    label: str
    aliases: list[str]
    rates: list[Rates]
    fast_multiplier: float = 1.0

    def rates_at(self, day: date) -> Rates:
        """The rates in force on `day` (the earliest period for days before all of them)."""
        chosen = self.rates[0]
        for period in self.rates:
            if period.since <= day:
                chosen = period
        return chosen


class PriceFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole prices.toml."""

    version: str
    family: list[Family]


class Usage(NamedTuple):
    """One request's tokens as the pricing needs them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_1h_tokens: int = 0
    fast: bool = False


def canonical_name(model: str) -> str:
    """A model name without provider prefix, date, version or `[1m]` suffix, lower case."""
    name = model.strip().lower()
    at = name.find("claude")
    if at > 0:
        name = name[at:]
    previous = None
    while previous != name:
        previous = name
        name = _SUFFIXES.sub("", name)
    return name


class PricingTable:
    """Resolves model names to families and prices requests; caches name resolution."""

    def __init__(self, price_file: PriceFile) -> None:
        self.version = price_file.version
        self.families = list(price_file.family)
        self._aliases = {a.lower(): f for f in self.families for a in (*f.aliases, f.name)}
        self._resolved: dict[str, Family | None] = {}
        for family in self.families:
            family.rates.sort(key=lambda r: r.since)

    def resolve(self, model: str) -> Family | None:
        """The family of a (possibly dated or provider-prefixed) model name, or None."""
        try:
            return self._resolved[model]
        except KeyError:
            found = self._aliases.get(canonical_name(model))
            self._resolved[model] = found
            return found

    def is_known(self, model: str) -> bool:
        """True for priced models and for `<synthetic>` (which costs nothing)."""
        return model == SYNTHETIC or self.resolve(model) is not None

    def cost(self, model: str, usage: Usage, at: datetime | date) -> float | None:
        """USD of one request, or None when the model is unknown (never a silent zero)."""
        if model == SYNTHETIC:
            return 0.0
        family = self.resolve(model)
        if family is None:
            return None
        return request_cost(family, usage, at)


RateRow = tuple[float, float, float, float, float]
_PERIODS: dict[tuple[int, date], tuple[Family, RateRow, RateRow, int | None]] = {}


def _rates_on(family: Family, day: date) -> tuple[RateRow, RateRow, int | None]:
    """Standard and long-context rates per token, and the threshold, for one family and day
    (cached: a transcript has few distinct days)."""
    key = (id(family), day)
    found = _PERIODS.get(key)
    if found is None or found[0] is not family:
        period = family.rates_at(day)
        found = (family, _per_token(period.standard()), _per_token(period.long()),
                 period.long_context_threshold)  # fmt: skip
        if len(_PERIODS) < 100_000:
            _PERIODS[key] = found
    return found[1], found[2], found[3]


def _per_token(row: RateRow) -> RateRow:
    a, b, c, d, e = (r * PER_TOKEN for r in row)
    return (a, b, c, d, e)


def request_cost(family: Family, usage: Usage, at: datetime | date) -> float:
    """Sum over token types at the request's rates (date, context tier, TTL, speed)."""
    day = at.date() if isinstance(at, datetime) else at
    std, long, threshold = _rates_on(family, day)
    write_1h = min(usage.cache_write_1h_tokens, usage.cache_creation_tokens)
    write_5m = usage.cache_creation_tokens - write_1h
    prompt = usage.input_tokens + usage.cache_creation_tokens + usage.cache_read_tokens
    rates = long if threshold is not None and prompt > threshold else std
    total = (
        usage.input_tokens * rates[0]
        + usage.output_tokens * rates[1]
        + write_5m * rates[2]
        + write_1h * rates[3]
        + usage.cache_read_tokens * rates[4]
    )
    return total * family.fast_multiplier if usage.fast else total


def parse_table(text: str) -> PricingTable:
    """A pricing table from TOML text (raises msgspec.ValidationError if malformed)."""
    return PricingTable(msgspec.convert(tomllib.loads(text), PriceFile))


@functools.cache
def default_table() -> PricingTable:
    """The table shipped with this version of Gasometer."""
    text = resources.files("gasometer.pricing").joinpath("prices.toml").read_text()
    return parse_table(text)
