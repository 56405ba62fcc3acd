"""Independent expectations for import tests: Anthropic's billing and ccusage 18's counting,
written from the published prices in plain Python (never from gasometer.pricing)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from gasometer.importer.fake import SYNTHETIC, TrueResponse

M = 1_000_000
GA_1M = date(2026, 3, 13)
# input, output, 5-minute cache write, 1-hour cache write, cache read (USD per million)
PRICES = {
    "claude-opus-4-6": (5, 25, 6.25, 10, 0.50),
    "claude-opus-4-5-20251101": (5, 25, 6.25, 10, 0.50),
    "claude-opus-4-1-20250805": (15, 75, 18.75, 30, 1.50),
    "claude-sonnet-4-6": (3, 15, 3.75, 6, 0.30),
    "claude-sonnet-4-5-20250929": (3, 15, 3.75, 6, 0.30),
    "claude-sonnet-4-20250514": (3, 15, 3.75, 6, 0.30),
    "claude-haiku-4-5-20251001": (1, 5, 1.25, 2, 0.10),
    "claude-3-5-haiku-20241022": (0.80, 4, 1, 1.6, 0.08),
}
SONNET_LONG = (6, 22.5, 7.5, 12, 0.60)
ALWAYS_LONG = {"claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514"}
LONG_UNTIL_GA = {"claude-sonnet-4-6", "claude-opus-4-6"}


def anthropic_cost(r: TrueResponse) -> float:
    """What Anthropic bills for one response (0 for API errors and unknown models)."""
    if r.model not in PRICES:
        return 0.0
    rates = PRICES[r.model]
    prompt = r.input + r.cache_write + r.cache_read
    long = prompt > 200_000 and (
        r.model in ALWAYS_LONG or (r.model in LONG_UNTIL_GA and r.ended.date() < GA_1M)
    )
    if long:
        if r.model == "claude-opus-4-6":
            i, o, w5, w1, rd = rates
            rates = (2 * i, 1.5 * o, 2 * w5, 2 * w1, 2 * rd)
        else:
            rates = SONNET_LONG
    write_5m = r.cache_write - r.cache_write_1h
    cost = (
        r.input * rates[0]
        + r.output * rates[1]
        + write_5m * rates[2]
        + r.cache_write_1h * rates[3]
        + r.cache_read * rates[4]
    ) / M
    return cost * 6 if r.fast else cost


def ccusage_cost(r: TrueResponse) -> float:
    """ccusage 18's figure: first line's output, 200k tier per token type (Sonnet 4 and
    4.5 only), every cache write at the 5-minute rate, fast mode at 6x (checked against
    ccusage 18.0.11 on generated transcripts)."""
    if r.model not in PRICES:
        return 0.0
    i, o, w5, _w1, rd = PRICES[r.model]
    tiered = r.model in ALWAYS_LONG

    def part(n: int, base: float, high: float) -> float:
        if not tiered or n <= 200_000:
            return n * base
        return 200_000 * base + (n - 200_000) * high

    cost = (
        part(r.input, i, 6)
        + part(r.first_output, o, 22.5)
        + part(r.cache_write, w5, 7.5)
        + part(r.cache_read, rd, 0.6)
    ) / M
    return cost * 6 if r.fast else cost


def per_day(responses: list[TrueResponse], cost: str = "anthropic") -> dict[str, list[float]]:
    """Day (UTC, by ended time) -> [cost, input, output, cache write, cache read]."""
    price = anthropic_cost if cost == "anthropic" else ccusage_cost
    days: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0, 0])
    for r in responses:
        if r.model == SYNTHETIC:
            continue
        d = days[r.ended.date().isoformat()]
        output = r.output if cost == "anthropic" else r.first_output
        d[0] += price(r)
        d[1] += r.input
        d[2] += output
        d[3] += r.cache_write
        d[4] += r.cache_read
    return dict(days)
