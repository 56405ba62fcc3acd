"""The running parts of Gasometer wired together, with no web framework involved.

`Gasometer.open(settings)` gives the store, the writer and the query engine over one data
directory; the API, the CLI, the importer, tests and benchmarks all start from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gasometer.config import Settings
from gasometer.ingest.attribution import Attributor, prefixes_from_town
from gasometer.ingest.normalize import normalize
from gasometer.ingest.writer import Ingestor
from gasometer.model import CostEvent, EventKind, IngestResult
from gasometer.query.engine import QueryEngine
from gasometer.store.store import Store


@dataclass
class Gasometer:
    """Store, writer, query engine and attribution rules over one data directory."""

    settings: Settings
    store: Store
    ingestor: Ingestor
    engine: QueryEngine
    attributor: Attributor

    @classmethod
    def open(cls, settings: Settings, *, background: bool = True) -> Gasometer:
        """Open the data directory (replaying its WAL) and start the writer and flusher."""
        store = Store(settings)
        prefixes = dict(settings.rig_prefixes)
        if settings.town_dir is not None:
            prefixes = {**prefixes_from_town(settings.town_dir), **prefixes}
        engine = QueryEngine(
            store, threads=settings.query_threads, memory_limit=settings.query_memory_limit
        )
        app = cls(settings, store, Ingestor(store), engine, Attributor(prefixes))
        if background:
            store.start()
        return app

    def ingest(
        self,
        events: Sequence[CostEvent],
        *,
        default_source: str = "api",
        kind: EventKind | None = None,
    ) -> IngestResult:
        """Validate, deduplicate and durably store events (blocking)."""
        drafts = normalize(events, self.attributor, default_source=default_source, kind=kind)
        return self.ingestor.ingest(drafts)

    def close(self) -> None:
        """Stop writing, flush, and release the data directory."""
        self.ingestor.close()
        self.engine.close()
        self.store.close()
