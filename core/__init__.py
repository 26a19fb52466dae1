"""OPS Trigger core: domain, services, storage and adapters shared by every front door."""

__version__ = "0.1.0"
