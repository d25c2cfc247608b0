"""A Feast feature repo as Frost sees it: settings, definitions, the applied registry.

Two views of the same repo:

* ``parse_definitions`` imports the repo's Python files (what ``feast apply`` would apply);
  user code runs inside an error boundary that names the file.
* ``FeatureRepo`` reads what has been applied (what serving and jobs use), through a
  compiled snapshot of the registry that needs no Feast import.
"""

from frost.repo._definitions import Definitions, apply, contract_of, parse_definitions
from frost.repo._files import FEATURE_STORE_YAML, RegistryLocation, RepoFile, read_repo_file
from frost.repo._repo import FeatureRepo, resolve_repo_path
from frost.repo._services import ServiceSpec
from frost.repo._snapshot import RegistrySnapshot, ServiceEntry, SourceSpec, ViewEntry

__all__ = [
    "FEATURE_STORE_YAML",
    "Definitions",
    "FeatureRepo",
    "RegistryLocation",
    "RegistrySnapshot",
    "RepoFile",
    "ServiceEntry",
    "ServiceSpec",
    "SourceSpec",
    "ViewEntry",
    "apply",
    "contract_of",
    "parse_definitions",
    "read_repo_file",
    "resolve_repo_path",
]
