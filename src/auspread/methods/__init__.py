"""Training methods, one readable file per algorithm. Importing this package registers all of them."""

import importlib

from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, get_method, method_names, register_method

# One line per method module; each registers itself with @register_method.
_MODULES = ["supervised", "ks", "pseudo_label", "fixmatch", "tcl", "mdhr", "piap_df"]


def import_modules(names: list[str]) -> None:
    """Import each method module (it registers itself). A missing or broken module fails loudly."""
    for m in names:
        importlib.import_module(f"auspread.methods.{m}")


import_modules(_MODULES)

__all__ = ["DataSpec", "DatasetInfo", "Method", "MethodOptions", "StepContext", "StepOutput", "get_method", "method_names", "register_method"]
