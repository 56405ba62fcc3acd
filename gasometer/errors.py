"""Errors that reach users: each carries one clear line and, for the API, a status."""


class GasometerError(Exception):
    """Base of every error Gasometer reports to a user as one line."""

    status: int = 400


class ConfigError(GasometerError):
    """The configuration (env, TOML file or flags) is invalid."""


class BadRequest(GasometerError):
    """The client sent something we cannot accept; the message names what and where."""

    status = 400


class StorageFull(GasometerError):
    """The disk is full: ingest is refused until space returns, nothing is lost."""

    status = 507


class QueryError(GasometerError):
    """A query (named or ad-hoc) failed or was refused."""

    status = 400


class PayloadTooLarge(GasometerError):
    """A request body over the configured limit."""

    status = 413


class IngestUnavailable(GasometerError):
    """The ledger cannot commit (damaged, or failing): nothing was acknowledged."""

    status = 503
