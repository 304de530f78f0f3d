"""Let ``edgevlm.export(...)`` / ``edgevlm.quantize(...)`` stay callable after their subpackages are imported.

Importing ``edgevlm.export`` sets the package attribute ``edgevlm.export`` to the submodule,
shadowing the function of the same name; giving the submodule a ``__call__`` keeps both meanings.
"""

from __future__ import annotations

import sys
import types


def make_callable(module_name: str, function_name: str) -> None:
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    module.__class__ = CallableModule
