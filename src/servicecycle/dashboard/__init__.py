"""The start page and, later, the dashboards."""
