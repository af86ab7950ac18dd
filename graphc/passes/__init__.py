"""Optimisation passes: the rewrite engine, the phases, and the pipeline that runs them."""

from graphc.passes.engine import Rewrite, RewriteLog, RewriteRecord
from graphc.passes.pipeline import LEVELS, PHASES, OptimizedGraph, all_rewrites, optimize

__all__ = ["LEVELS", "PHASES", "OptimizedGraph", "Rewrite", "RewriteLog", "RewriteRecord", "all_rewrites",
           "optimize"]
