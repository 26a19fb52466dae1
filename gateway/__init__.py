"""The HTTP gateway: a thin FastAPI front door over the core services."""

from gateway.app import create_app

__all__ = ["create_app"]
