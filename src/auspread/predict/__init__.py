"""``auspread predict``: AU occurrence from people's own videos and images (inputs, pipeline, writers, plots, overlay)."""
