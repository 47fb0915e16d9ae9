"""loss-service: PyTorch losses over HTTP, side by side with an independent NumPy reference."""

__version__ = "0.1.0"
