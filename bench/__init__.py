"""The benchmark (``python bench/run.py``) and the comparison service it starts."""
