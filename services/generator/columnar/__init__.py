"""The columnar generator: populations of millions as numpy arrays (see engine.py)."""
