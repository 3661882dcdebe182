"""Errors that name their culprit: a params key, a path, a file, a value."""


class PipelineError(Exception):
    """Base class: anything the user can fix by changing params or input files."""


class ParamsError(PipelineError):
    """A params.yaml key is unknown, has the wrong type or an out-of-range value."""


class DataError(PipelineError):
    """A data set on disk is missing, in the wrong layout, empty or corrupt."""


class TopologyError(PipelineError):
    """Persistence images could not be computed or are invalid (NaN, inf)."""


class CheckpointError(PipelineError):
    """A checkpoint is missing or does not match the expected model or params."""


class ExportError(PipelineError):
    """A model's ONNX export failed or disagrees with PyTorch beyond the stated tolerance."""
