"""Feature logging: Feast's feature-log schema, logged lookups, the log writer.

The one owner of how a served lookup is logged; the server writes with it, the audit and
training sets from logs read what it wrote.
"""

from frost.feature_log._audit import (
    CAUSES,
    AuditResult,
    FeatureAgreement,
    Mismatch,
    compare,
    refine,
    same_value,
)
from frost.feature_log._files import ParquetFiles
from frost.feature_log._kafka import KafkaTopic, LoggedBatch, decode_message, encode_message
from frost.feature_log._process import ProcessLogWriter
from frost.feature_log._read import read_logs
from frost.feature_log._records import LogRecord, log_table
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
from frost.feature_log._writer import LogDestination, LogWriter, WriterStats

__all__ = [
    "CAUSES",
    "LOG_DATE",
    "LOG_TIMESTAMP",
    "REQUEST_ID",
    "AuditResult",
    "FeatureAgreement",
    "KafkaTopic",
    "LogDestination",
    "LogRecord",
    "LogSchema",
    "LogTarget",
    "LogWriter",
    "LoggedBatch",
    "LoggedFeature",
    "Mismatch",
    "ParquetFiles",
    "ProcessLogWriter",
    "WriterStats",
    "arrow_type",
    "compare",
    "decode_message",
    "encode_message",
    "log_table",
    "log_target",
    "read_logs",
    "refine",
    "same_value",
]
