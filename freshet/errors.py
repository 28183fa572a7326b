"""The root of Freshet's exceptions: every package's own errors derive from it.

It imports nothing and sits below every layer (tests/test_layers.py), so the library
(``ps``) and the dense models can raise it too. Each error keeps the built-in class a
caller would already catch (``ConfigError`` is a ``ValueError``), so ``except
FreshetError`` catches everything Freshet refuses and older ``except`` clauses still work.

Examples
--------
>>> try:
...     raise ConfigError("model.kind: 'mlp' is not one of deepfm, lr, dcn")
... except ValueError as e:
...     isinstance(e, FreshetError)
True
"""


class FreshetError(Exception):
    """Something Freshet refuses, with a message that says what to do."""


class ConfigError(FreshetError, ValueError):
    """A configuration file or override is invalid."""
