"""Run reports: checks and gates, report.json (versioned), report.md, redaction of secrets."""
