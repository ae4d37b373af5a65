"""Incident lifecycle, dispatch, SLA timers and escalation, audit trail."""
