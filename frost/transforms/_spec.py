"""What Frost keeps of a Feast ``OnDemandFeatureView``: its inputs, mode and function.

The function is kept as Feast keeps it in the registry: its source text (run first, with
``pd``/``np`` in its globals, as Feast's own server does) and its dill pickle (the fallback).
Nothing here imports Feast: a registry snapshot holds these specs as JSON.
"""

from __future__ import annotations

import ast
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frost.codec import FeatureType
from frost.errors import DefinitionError

__all__ = ["InputView", "OnDemandSpec", "RequestField", "load_function"]

MODES = ("python", "pandas")


@dataclass(frozen=True)
class InputView:
    """One feature-view source: the view read, the name the function sees it by (a
    projection's alias, else the view's name) and the features it takes."""

    view: str
    name: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class RequestField:
    """A field the client sends with the request (a ``RequestSource`` field)."""

    name: str
    type: FeatureType
    source: str


@dataclass(frozen=True)
class OnDemandSpec:
    mode: str  # "python" or "pandas"
    singleton: bool
    write_to_online_store: bool
    inputs: tuple[InputView, ...]
    request_fields: tuple[RequestField, ...]
    function_name: str
    source_text: str
    pickled: bytes  # Feast's dill body

    @property
    def input_views(self) -> list[str]:
        return [i.view for i in self.inputs]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "singleton": self.singleton,
            "write_to_online_store": self.write_to_online_store,
            "inputs": [
                {"view": i.view, "name": i.name, "features": list(i.features)} for i in self.inputs
            ],
            "request_fields": [
                {"name": f.name, "type": str(f.type), "source": f.source}
                for f in self.request_fields
            ],
            "function_name": self.function_name,
            "source_text": self.source_text,
            "pickled": base64.b64encode(self.pickled).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnDemandSpec:
        return cls(
            mode=data["mode"],
            singleton=bool(data["singleton"]),
            write_to_online_store=bool(data["write_to_online_store"]),
            inputs=tuple(
                InputView(i["view"], i["name"], tuple(i["features"])) for i in data["inputs"]
            ),
            request_fields=tuple(
                RequestField(f["name"], FeatureType.parse(f["type"]), f["source"])
                for f in data["request_fields"]
            ),
            function_name=data["function_name"],
            source_text=data["source_text"],
            pickled=base64.b64decode(data["pickled"]),
        )

    @classmethod
    def from_feast(cls, view: Any) -> OnDemandSpec:
        """From a ``feast.OnDemandFeatureView`` (the registry's copy, or the repo's)."""
        name = view.name
        inputs = tuple(
            InputView(p.name, p.name_to_use(), tuple(f.name for f in p.features))
            for p in view.source_feature_view_projections.values()
        )
        fields = []
        for source in view.source_request_sources.values():
            for field in source.schema:
                where = f"on-demand view '{name}', request field '{field.name}'"
                fields.append(
                    RequestField(field.name, FeatureType.of_feast_field(field, where), source.name)
                )
        udf = view.to_proto().spec.feature_transformation.user_defined_function
        return cls(
            mode=str(view.mode),
            singleton=bool(getattr(view, "singleton", False)),
            write_to_online_store=bool(view.write_to_online_store),
            inputs=inputs,
            request_fields=tuple(fields),
            function_name=udf.name,
            source_text=udf.body_text,
            pickled=bytes(udf.body),
        )


def load_function(view: str, spec: OnDemandSpec) -> Callable[..., Any]:
    """The view's function: its source text run with ``pd`` and ``np`` in scope, else
    (source that does not run alone) its dill pickle. Raises ``DefinitionError``."""
    function = _from_source(spec.source_text, spec.function_name)
    if function is not None:
        return function
    if spec.pickled:
        import dill  # type: ignore[import-untyped]

        try:
            loaded = dill.loads(spec.pickled)
        except Exception as exc:
            raise DefinitionError(
                f"on-demand view '{view}': its function cannot be loaded from the registry "
                f"({type(exc).__name__}: {exc}); run frost apply with this Python version"
            ) from exc
        if callable(loaded):
            return loaded  # type: ignore[no-any-return]
    raise DefinitionError(f"on-demand view '{view}': the registry holds no usable function")


def _from_source(text: str, name: str) -> Callable[..., Any] | None:
    """The function ``name`` defined by ``text``, decorators dropped; None if it won't run."""
    try:
        tree = ast.parse(_dedent(text))
    except SyntaxError:
        return None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not defs:
        return None
    for node in defs:
        node.decorator_list = []
    import numpy as np
    import pandas as pd

    scope: dict[str, Any] = {"__name__": "frost_on_demand", "pd": pd, "np": np}
    scope |= {"pandas": pd, "numpy": np}
    try:
        exec(compile(tree, f"<on-demand {name}>", "exec"), scope)
    except Exception:
        return None
    chosen = scope.get(name) or scope.get(defs[-1].name)
    return chosen if callable(chosen) else None


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)
