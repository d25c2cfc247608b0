"""The flags that choose and configure a batch engine, shared by the batch commands."""

from __future__ import annotations

import argparse
from typing import Any

from frost.app.cli._args import spark_conf
from frost.errors import ConfigError
from frost.repo import FeatureRepo
from frost.settings import ENGINES


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="local (DuckDB in this process) or spark (default: $FROST_ENGINE, else "
        "frost.engine, else spark when a Spark master is given, else local)",
    )
    parser.add_argument(
        "--spark-master",
        default=None,
        help="Spark master URL; implies --engine spark (default: frost.spark.master, local[*])",
    )
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark configuration; repeatable",
    )


def engine_options(args: argparse.Namespace, repo: FeatureRepo) -> dict[str, Any]:
    """``engine`` and ``spark_settings`` for the library call."""
    if args.engine == "local" and (args.spark_master or args.spark_conf):
        raise ConfigError("--spark-master and --spark-conf need --engine spark, not local")
    conf = spark_conf(args.spark_conf)
    return {
        "engine": args.engine,
        "spark_settings": repo.settings.spark.with_overrides(args.spark_master, conf),
    }
