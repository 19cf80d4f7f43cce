"""The sparse-labelling loop for people's own videos: choose which frames to label (``suggest``), keep the answers
in a generic manifest (``manifest``), and the local labelling page (``server``, ``frames``, ``static/``)."""
