"""The root of the application's exceptions (the ground's, and every layer above)."""


class FreshetError(Exception):
    """Something Freshet refuses, with a message that says what to do."""


class ConfigError(FreshetError, ValueError):
    """A configuration file or override is invalid."""
