"""Tickets: one per problem, whatever the channel, with their threaded messages."""
