"""Follow-ups: contacts planned after (or during) service, and the recovery of unhappy customers."""
