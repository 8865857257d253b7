"""Notifications: short messages to agents (escalations, mentions), read in the workspace."""
