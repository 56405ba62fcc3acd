"""Pricing: families from dated names, tiers, cache TTLs, fast mode, dates, unknown models.

Expected amounts are written out from Anthropic's list prices (USD per million tokens),
not read from the shipped table."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from importlib import resources

import pytest

from gasometer.cli import main
from gasometer.pricing import SYNTHETIC, Usage, canonical_name, default_table

M = 1_000_000
DAY = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ],
)
def test_dated_names_resolve_to_their_family(model: str, family: str) -> None:
    found = default_table().resolve(model)
    assert found is not None and found.name == family


def test_opus_4_does_not_swallow_opus_4_1() -> None:
    assert canonical_name("claude-opus-4-1-20250805") == "claude-opus-4-1"
    assert default_table().resolve("claude-opus-4-1") is not default_table().resolve(
        "claude-opus-4"
    )


def test_unknown_models_are_none_not_zero() -> None:
    table = default_table()
    assert table.cost("claude-mythos-5-20260101", Usage(100, 100), DAY) is None
    assert table.cost("gpt-4o", Usage(100, 100), DAY) is None
    assert not table.is_known("claude-mythos-5")


def test_synthetic_is_free_and_known() -> None:
    table = default_table()
    assert table.cost(SYNTHETIC, Usage(0, 0), DAY) == 0.0
    assert table.is_known(SYNTHETIC)


@pytest.mark.parametrize(
    ("model", "rates"),
    [
        ("claude-opus-4-5-20251101", (5, 25, 6.25, 10, 0.50)),
        ("claude-opus-4-6", (5, 25, 6.25, 10, 0.50)),
        ("claude-opus-4-1-20250805", (15, 75, 18.75, 30, 1.50)),
        ("claude-opus-4-20250514", (15, 75, 18.75, 30, 1.50)),
        ("claude-sonnet-4-5-20250929", (3, 15, 3.75, 6, 0.30)),
        ("claude-sonnet-4-20250514", (3, 15, 3.75, 6, 0.30)),
        ("claude-haiku-4-5-20251001", (1, 5, 1.25, 2, 0.10)),
        ("claude-3-5-haiku-20241022", (0.80, 4, 1, 1.6, 0.08)),
    ],
)
def test_each_token_type_at_its_rate(model: str, rates: tuple[float, ...]) -> None:
    table = default_table()
    i, o, w5, w1, r = rates
    n = 100_000
    assert table.cost(model, Usage(input_tokens=n), DAY) == pytest.approx(i / 10)
    assert table.cost(model, Usage(output_tokens=M), DAY) == pytest.approx(o)
    assert table.cost(model, Usage(cache_creation_tokens=n), DAY) == pytest.approx(w5 / 10)
    one_hour = Usage(cache_creation_tokens=n, cache_write_1h_tokens=n)
    assert table.cost(model, one_hour, DAY) == pytest.approx(w1 / 10)
    assert table.cost(model, Usage(cache_read_tokens=100_000), DAY) == pytest.approx(r / 10)
    mixed = Usage(1000, 2000, 3000, 4000, 1000)
    expected = (1000 * i + 2000 * o + 2000 * w5 + 1000 * w1 + 4000 * r) / M
    assert table.cost(model, mixed, DAY) == pytest.approx(expected)


def test_sonnet_long_context_prices_the_whole_request() -> None:
    table = default_table()
    below = Usage(input_tokens=1000, output_tokens=5000, cache_creation_tokens=9000,
                  cache_read_tokens=190_000)  # fmt: skip
    assert below.input_tokens + below.cache_creation_tokens + below.cache_read_tokens == 200_000
    expected_below = (1000 * 3 + 5000 * 15 + 9000 * 3.75 + 190_000 * 0.30) / M
    above = below._replace(input_tokens=1001)
    expected_above = (1001 * 6 + 5000 * 22.5 + 9000 * 7.5 + 190_000 * 0.60) / M
    for model in ("claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514"):
        assert table.cost(model, below, DAY) == pytest.approx(expected_below)
        assert table.cost(model, above, DAY) == pytest.approx(expected_above)


def test_long_context_1h_write_rate() -> None:
    usage = Usage(input_tokens=10, cache_creation_tokens=300_000, cache_write_1h_tokens=100_000)
    expected = (10 * 6 + 200_000 * 7.5 + 100_000 * 12) / M
    assert default_table().cost("claude-sonnet-4-5", usage, DAY) == pytest.approx(expected)


def test_4_6_long_context_only_before_2026_03_13() -> None:
    table = default_table()
    big = Usage(input_tokens=250_000, output_tokens=1000)
    before, after = date(2026, 3, 12), date(2026, 3, 13)
    assert table.cost("claude-sonnet-4-6", big, before) == pytest.approx(
        (250_000 * 6 + 1000 * 22.5) / M
    )
    assert table.cost("claude-sonnet-4-6", big, after) == pytest.approx(
        (250_000 * 3 + 1000 * 15) / M
    )
    assert table.cost("claude-opus-4-6", big, before) == pytest.approx(
        (250_000 * 10 + 1000 * 37.5) / M
    )
    assert table.cost("claude-opus-4-6", big, after) == pytest.approx((250_000 * 5 + 1000 * 25) / M)
    assert table.cost("claude-opus-4-5", big, before) == pytest.approx(
        (250_000 * 5 + 1000 * 25) / M
    )


def test_fast_mode_is_six_times() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000, cache_read_tokens=10_000)
    plain = (1000 * 5 + 1000 * 25 + 10_000 * 0.5) / M
    table = default_table()
    assert table.cost("claude-opus-4-6", usage, DAY) == pytest.approx(plain)
    assert table.cost("claude-opus-4-6", usage._replace(fast=True), DAY) == pytest.approx(6 * plain)


def test_table_file_ships_in_the_package_and_is_dated() -> None:
    text = resources.files("gasometer.pricing").joinpath("prices.toml").read_text()
    data = tomllib.loads(text)
    assert data["version"]
    assert all(r["since"] for f in data["family"] for r in f["rates"])


def test_pricing_command_lists_families(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing"]) == 0
    out = capsys.readouterr().out
    for name in ("claude-opus-4-6", "claude-sonnet-4-5", "claude-3-5-haiku", "2026-03-13"):
        assert name in out
