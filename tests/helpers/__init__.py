"""Servers the tests run for themselves (PostgreSQL, an MLflow tracking server), each on 127.0.0.1 and
stopped by its process id."""
