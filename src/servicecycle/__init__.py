"""Servicecycle: the whole cycle of customer service, and the analysis that improves it."""

__version__ = "0.1.0"
