"""On-demand feature views: their declarations and the one place their functions run."""

from frost.transforms._request import judge_outputs, output_checks, stored_reads
from frost.transforms._run import Transform, compile_transform, written_outputs
from frost.transforms._spec import InputView, OnDemandSpec, RequestField, load_function

__all__ = [
    "InputView",
    "OnDemandSpec",
    "RequestField",
    "Transform",
    "compile_transform",
    "judge_outputs",
    "load_function",
    "output_checks",
    "stored_reads",
    "written_outputs",
]
