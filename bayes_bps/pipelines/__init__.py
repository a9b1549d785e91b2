"""Diffusers pipelines: `BPSPipeline` (a fitted steering; `export_run` writes one) and
`BPSBasePipeline` (an embedded base, as its model_index.json names it)."""

from .base import BPSBasePipeline
from .bps import BPSPipeline, BPSPipelineOutput
from .export import export_run, pipeline_for

__all__ = ["BPSBasePipeline", "BPSPipeline", "BPSPipelineOutput", "export_run", "pipeline_for"]
