"""Helpers for testing the workflow as a user with a model hub would run it (:mod:`convergence.testing.hub`)."""
