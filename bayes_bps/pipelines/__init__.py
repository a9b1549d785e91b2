"""Fitted steerings as diffusers pipelines: `BPSPipeline`, and `export_run` to write one."""

from .bps import BPSPipeline, BPSPipelineOutput
from .export import export_run, pipeline_for

__all__ = ["BPSPipeline", "BPSPipelineOutput", "export_run", "pipeline_for"]
