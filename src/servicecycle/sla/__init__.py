"""Service standards: business calendars, SLA policies, clocks and escalation."""
