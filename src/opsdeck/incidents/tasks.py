"""Incident jobs (mail, outbound webhooks, the daily digest)."""

from __future__ import annotations
