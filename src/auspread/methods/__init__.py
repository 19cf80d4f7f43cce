"""Training methods, one readable file per algorithm. Importing this package registers all of them."""

import importlib

from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, get_method, method_names, register_method

# One line per method module; each registers itself with @register_method.
_MODULES = ["supervised", "ks", "pseudo_label", "fixmatch", "tcl", "mdhr", "piap_df"]

for _m in _MODULES:
    try:
        importlib.import_module(f"auspread.methods.{_m}")
    except ModuleNotFoundError as _e:  # a method module not written yet
        if _e.name != f"auspread.methods.{_m}":
            raise

__all__ = ["DataSpec", "DatasetInfo", "Method", "MethodOptions", "StepContext", "StepOutput", "get_method", "method_names", "register_method"]
