"""Surveys after service: CSAT, NPS and CES, one-click answers, and the scores they give."""
