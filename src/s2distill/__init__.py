"""s2distill: distil System 2 prompting methods into System 1 answers, without labels."""
from .types import (Call, Completion, EvalRecord, Example, GenRequest, Rejected, Sample, SamplingParams, Trace,
                    TrainPair)

__version__ = "0.1.0"

__all__ = ["Call", "Completion", "EvalRecord", "Example", "GenRequest", "Rejected", "Sample", "SamplingParams",
           "Trace", "TrainPair", "__version__"]
