"""Webhooks: signed outbound deliveries of events, and an inbound endpoint for other systems."""
