"""Channels: every way a contact reaches the desk (e-mail, portal, chat, webhooks)."""
