"""Point-in-time-correct training sets of feature services, on the local engine (DuckDB,
the default) or Spark."""

from frost.pipelines.offline._training_set import TrainingSetReport, training_set

__all__ = ["TrainingSetReport", "training_set"]
