"""Point-in-time-correct training sets of feature services, on the local engine (DuckDB,
the default) or Spark."""

from frost.pipelines.offline._audit import audit, service_log_target
from frost.pipelines.offline._training_set import TrainingSetReport, training_set

__all__ = ["TrainingSetReport", "audit", "service_log_target", "training_set"]
