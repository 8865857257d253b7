"""The web shell: app factory, layout, errors, observability, static assets."""
