"""Prefect flows: each only wires tasks from ``tasks/``."""

from faqforge.runtime import prepare_environment

prepare_environment()
