"""
The release of novasvc (setup.py reads the same number).
"""

__version__ = "0.1.0"
