"""Test stack: replaced by the PostgreSQL + Redis launcher."""
