"""Exceptions whose messages name the fix."""


class S2DistillError(Exception):
    """Base class: the message tells the user what to do."""


class ConfigError(S2DistillError):
    pass


class DataError(S2DistillError):
    pass


class ModelError(S2DistillError):
    pass


class BackendError(S2DistillError):
    pass
