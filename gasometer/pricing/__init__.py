"""Model prices: a versioned, dated table shipped as data (prices.toml)."""

from gasometer.pricing.table import (
    SYNTHETIC,
    Family,
    PricingTable,
    Rates,
    Usage,
    canonical_name,
    default_table,
    parse_table,
    request_cost,
)

__all__ = [
    "SYNTHETIC",
    "Family",
    "PricingTable",
    "Rates",
    "Usage",
    "canonical_name",
    "default_table",
    "parse_table",
    "request_cost",
]
