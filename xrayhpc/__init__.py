"""xrayhpc: the COVID-19 chest X-ray transfer-learning study as a grid of batch jobs."""

__version__ = "0.1.0"
