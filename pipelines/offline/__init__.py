"""Point-in-time-correct training sets of feature services, on the local engine (DuckDB,
the default) or Spark."""

from frost.pipelines.offline._audit import audit, service_log_target
from frost.pipelines.offline._from_logs import FromLogsReport, training_set_from_logs
from frost.pipelines.offline._training_set import TrainingSetReport, training_set

__all__ = [
    "FromLogsReport",
    "TrainingSetReport",
    "audit",
    "service_log_target",
    "training_set",
    "training_set_from_logs",
]
