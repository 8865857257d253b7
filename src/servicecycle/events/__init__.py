"""The event log: every state change, appended in the same transaction as the change."""
