"""Run the real `auspread` entry point in-process and collect its exit code and stderr."""

import sys

import pytest


def run_cli(args, capsys):
    """``auspread ARGS`` through ``auspread.cli.main``: returns (exit code, stderr)."""
    from auspread.cli import main

    old = sys.argv
    sys.argv = ["auspread", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (face detection is much faster so on a shared 2-core machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
