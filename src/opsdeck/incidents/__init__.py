"""Incidents: declare, drive through a workflow, learn from (postmortems and follow-ups)."""
