"""Named queries of queries/ for callers: their headers, declared parameters and bounds.

A query's header comment names its `$parameters`, their types and their bounds, e.g.
`$minutes (BIGINT, at most 1440)`, `$limit (BIGINT, rows, 1 to 10000)`,
`$group_by ('role' | 'rig')`, `$tz (IANA zone)`, `$start (TIMESTAMPTZ)`. Those words are
the contract a caller is held to: a value outside them is a 400 naming the bound. Where a
header states no bound, the type's own applies: times and dates between 2000-01-01 and
2100-01-01, integers 0 or more, text at most 200 characters without control characters.
"""

from __future__ import annotations

import functools
import logging
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import msgspec

from gasometer.errors import BadRequest, QueryError
from gasometer.query.sqlcheck import MACRO_SCHEMA, first_line
from gasometer.resources import query_header, query_names, query_text

INTERNAL_QUERIES = frozenset({"rollup_hourly", "rollup_merge", "rollup_of_exact_hours"})
"""Building blocks of the store and the engine, not answers."""

TYPES = {"TIMESTAMPTZ", "TIMESTAMP", "DATE", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "VARCHAR"}
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TEXT = 200
MAX_INT = 2**63 - 1
log = logging.getLogger("gasometer.sql")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PARAM_DEFAULTS: dict[str, str] = {
    "start": "TIMESTAMPTZ '2000-01-01 00:00:00+00'",
    "end": "TIMESTAMPTZ '2100-01-01 00:00:00+00'",
    "tz": "'UTC'",
    "group_by": "'role'",
    "limit": "100",
    "now": "current_timestamp",
}
"""SQL defaults of parameters a caller leaves out (every other one defaults to NULL = any)."""


class UnknownQuery(QueryError):
    """No public named query by that name."""

    status = 404


class NamedQuery(msgspec.Struct):
    """One query of queries/: its name, header comment and declared `$parameters`."""

    name: str
    description: str
    parameters: list[str]
    internal: bool


class ParamSpec(msgspec.Struct, frozen=True):
    """What a header declares for one parameter: type and bounds (None = the type's own)."""

    name: str
    kind: str = "VARCHAR"
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    zone: bool = False


def query_body(name: str) -> str:
    """The SQL of a named query without its header comment or a trailing semicolon."""
    lines = query_text(name).splitlines()
    body = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
    return body.strip().rstrip(";")


def declared_params(name: str) -> list[str]:
    """The `$parameters` a named query uses, in order of first use."""
    return list(dict.fromkeys(re.findall(r"\$([A-Za-z_]\w*)", query_body(name))))


@functools.cache
def param_specs(name: str) -> dict[str, ParamSpec]:
    """Type and bounds of each parameter a query uses, as its header declares them."""
    header = query_header(name)
    header = header[header.find("Parameters:") :] if "Parameters:" in header else ""
    specs: dict[str, ParamSpec] = {}
    waiting: list[str] = []
    for match in re.finditer(r"\$(\w+)|\(([^()]*)\)|[.;]", header):
        if match.group(1):
            waiting.append(match.group(1))
            continue
        spec = _spec_of(match.group(2)) if match.group(2) is not None else None
        if match.group(2) is not None and spec is None:
            continue  # a description such as "(start of $now's UTC hour)": keep waiting
        for param in waiting:
            if spec is not None:
                specs.setdefault(param, msgspec.structs.replace(spec, name=param))
        waiting = []
    return {p: specs.get(p, ParamSpec(p)) for p in declared_params(name)}


def _spec_of(words: str) -> ParamSpec | None:
    """A ParamSpec (without its name) from the words in one pair of parentheses."""
    text = words.strip()
    choices = tuple(re.findall(r"'([^']*)'", text))
    if text.startswith("'") and choices:
        return ParamSpec("", choices=choices)
    if text.startswith("IANA zone"):
        return ParamSpec("", zone=True)
    if text.startswith("NULL"):
        return ParamSpec("")
    kind = re.match(r"([A-Z]+)\b", text)
    if kind is None or kind.group(1) not in TYPES:
        return None
    low = high = None
    if most := re.search(r"at most (\d+)", text):
        high = int(most.group(1))
    if span := re.search(r"(\d+) to (\d+)", text):
        low, high = int(span.group(1)), int(span.group(2))
    return ParamSpec("", kind=kind.group(1), low=low, high=high)


def param_types(name: str) -> dict[str, str]:
    """Parameter types stated in the header (`$a, $b (TIMESTAMPTZ, …)`); others are text."""
    return {p: s.kind for p, s in param_specs(name).items() if s.kind != "VARCHAR"}


def named_queries(include_internal: bool = True) -> list[NamedQuery]:
    """Every named query with its header; internal ones marked (or left out)."""
    return [
        NamedQuery(name, query_header(name), declared_params(name), name in INTERNAL_QUERIES)
        for name in query_names()
        if include_internal or name not in INTERNAL_QUERIES
    ]


def public_names() -> list[str]:
    """Names of the queries callers may run (the internal building blocks left out)."""
    return [n for n in query_names() if n not in INTERNAL_QUERIES and n.isidentifier()]


def public_query(name: str) -> str:
    """`name` if it is a public named query; UnknownQuery (404) otherwise."""
    if name not in query_names() or name in INTERNAL_QUERIES:
        raise UnknownQuery(f"no named query {name!r} (see GET /api/queries)")
    return name


def bind_params(name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Query-string values converted to their declared types and held to their declared
    bounds; unknown names refused; missing ones take their defaults."""
    specs = param_specs(name)
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        listed = ", ".join(specs) or "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r} for {name} (it takes: {listed})")
    values: dict[str, Any] = {}
    for param, spec in specs.items():
        if param in raw:
            values[param] = check_bounds(spec, _convert(spec, raw[param]))
        else:
            values[param] = _default(param)
    return values


def _default(param: str) -> Any:
    defaults: dict[str, Any] = {
        "start": EARLIEST,
        "end": LATEST,
        "tz": "UTC",
        "group_by": "role",
        "limit": 100,
        "now": datetime.now(UTC),
    }
    return defaults.get(param)


def _convert(spec: ParamSpec, value: str) -> Any:
    kind = spec.kind
    try:
        if kind in ("TIMESTAMPTZ", "TIMESTAMP"):
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if kind == "DATE":
            return date.fromisoformat(value)
        if kind in ("BIGINT", "INTEGER"):
            return int(value)
        if kind == "DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            return {"true": True, "1": True, "false": False, "0": False}[value.lower()]
    except (ValueError, KeyError):
        raise BadRequest(f"parameter {spec.name}: {value[:40]!r} is not a valid {kind}") from None
    return value


def check_bounds(spec: ParamSpec, value: Any) -> Any:
    """`value` if it is within what the header declares for it; BadRequest naming the bound."""
    name = spec.name
    if isinstance(value, datetime | date):
        moment = value if isinstance(value, datetime) else datetime(*value.timetuple()[:3])
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if not EARLIEST <= moment <= LATEST:
            raise BadRequest(f"parameter {name}: must be between 2000-01-01 and 2100-01-01")
    elif isinstance(value, int) and not isinstance(value, bool):
        low = 0 if spec.low is None else spec.low
        high = MAX_INT if spec.high is None else spec.high
        if not low <= value <= high:
            raise BadRequest(f"parameter {name}: {value} is outside its bound of {low} to {high}")
    elif isinstance(value, str):
        _check_text(spec, value)
    return value


def _check_text(spec: ParamSpec, value: str) -> None:
    name = spec.name
    if len(value) > MAX_TEXT:
        raise BadRequest(f"parameter {name}: longer than its bound of {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise BadRequest(f"parameter {name}: control characters are not allowed")
    if spec.choices and value not in spec.choices:
        raise BadRequest(f"parameter {name}: must be one of {', '.join(spec.choices)}")
    if spec.zone and value not in _zones():
        raise BadRequest(f"parameter {name}: {value[:40]!r} is not an IANA time zone")


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def install_macros(conn: duckdb.DuckDBPyConnection) -> None:
    """Each public named query as a table macro `queries.<name>(p_<param> := default, …)`.

    Parameters carry a `p_` prefix because DuckDB resolves a macro parameter named like a
    column (`role`) to the column.
    """
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MACRO_SCHEMA}")
    for name in public_names():
        params = declared_params(name)
        args = ", ".join(f"p_{p} := {PARAM_DEFAULTS.get(p, 'NULL')}" for p in params)
        body = re.sub(r"\$([A-Za-z_]\w*)", r"p_\1", query_body(name))
        try:
            conn.execute(f'CREATE MACRO {MACRO_SCHEMA}."{name}"({args}) AS TABLE {body}')
        except duckdb.Error as exc:  # one odd query must not take the others down
            log.warning("named query %s is not available as a macro: %s", name, first_line(exc))
