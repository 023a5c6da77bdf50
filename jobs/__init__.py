"""Shipped inside the package as `xrayhpc.grids` (see pyproject.toml): the experiment grids."""
