"""Provisioning of the real services the harness needs: PostgreSQL and the fault proxy."""
