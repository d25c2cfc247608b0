"""Frost's jobs: batch materialization with Spark (``pipelines.batch``)."""
