"""Automations: triggers on events, time rules, macros and routing."""
