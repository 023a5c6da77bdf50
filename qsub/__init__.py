"""Shipped inside the package as `xrayhpc.qsub` (see pyproject.toml): the job template and the site profiles."""
