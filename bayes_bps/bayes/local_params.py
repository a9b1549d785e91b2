"""Module-local Pyro parameters, scoped to the package's own Pyro modules.

The model and the guide keep their parameters in their own state_dicts, not in Pyro's global
param store: two fits in one notebook then never share values, and checkpoints are plain
state_dicts. Pyro reads that setting (`module_local_params`) whenever a PyroModule is built or
called, so `module_local` sets it around exactly those two, and restores the caller's value
afterwards: importing or using bayes_bps leaves a user's own Pyro code as it was.
"""

from __future__ import annotations

import functools

import pyro


def _scoped(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with pyro.settings.context(module_local_params=True):
            return method(*args, **kwargs)

    return wrapper


def module_local(cls: type) -> type:
    """Class decorator for a PyroModule: build and call it with module-local parameters."""
    cls.__init__ = _scoped(cls.__init__)
    cls.__call__ = _scoped(cls.__call__)
    return cls
