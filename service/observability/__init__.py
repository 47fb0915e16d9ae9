"""What operators see of the service: Prometheus metrics (``metrics``), the per-request
observation that feeds them and the access log (``requests``), and the log format (``logs``)."""
