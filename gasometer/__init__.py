"""Gasometer: cost intelligence for fleets of Claude Code agents."""

__version__ = "0.1.0"
