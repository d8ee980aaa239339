"""Locust load tests for the example site (see ``python -m loadtests --help`` and the README)."""
