"""Run the real `auspread` entry point in-process and collect its exit code and stderr."""

import sys



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


