"""Camera workers: capture, motion gating, detection, tracking, analytics, evidence."""
