"""Feature logging: Feast's feature-log schema, logged lookups, the log writer.

The one owner of how a served lookup is logged; the server writes with it, the audit and
training sets from logs read what it wrote.
"""

from frost.feature_log._records import LogRecord, Served, log_table
from frost.feature_log._schema import (
    LOG_DATE,
    LOG_TIMESTAMP,
    REQUEST_ID,
    LoggedFeature,
    LogSchema,
    LogTarget,
    arrow_type,
    log_target,
)
from frost.feature_log._writer import LogWriter, WriterStats

__all__ = [
    "LOG_DATE",
    "LOG_TIMESTAMP",
    "REQUEST_ID",
    "LogRecord",
    "LogSchema",
    "LogTarget",
    "LogWriter",
    "LoggedFeature",
    "Served",
    "WriterStats",
    "arrow_type",
    "log_table",
    "log_target",
]
