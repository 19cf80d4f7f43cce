"""Evaluation: masked vectorised metrics, dense whole-video prediction, reports."""
