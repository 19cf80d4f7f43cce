"""auspread: facial action unit detection in video from extremely sparse labels."""

__version__ = "0.1.0"
