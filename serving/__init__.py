"""Frost's gRPC feature server: Feast's ``ServingService`` API, honest statuses per value.

Run it with ``frost serve``; embed it with ``serve(repo, ServeSettings(...))``.
"""

from serving._config import ClientSpec, ServeSettings, TlsFiles
from serving._run import serve

__all__ = ["ClientSpec", "ServeSettings", "TlsFiles", "serve"]
