"""Data sets installed at run time from PyPI packages (never committed)."""
