"""Frost's gRPC feature server: Feast's ``ServingService`` API, honest statuses per value.

Run it with ``frost serve``; embed it with ``serve(repo, ServeSettings(...))``.
"""

from frost.serving._config import ClientSpec, Limits, ServeSettings, SettingsSource, TlsFiles
from frost.serving._run import serve

__all__ = ["ClientSpec", "Limits", "ServeSettings", "SettingsSource", "TlsFiles", "serve"]
