"""Faces: MTCNN detection with 5 landmarks (``detect``), the 5-point similarity alignment (``align``), IoU box
tracking (``track``) and the ``auspread prepare`` pipeline (``prepare``)."""
