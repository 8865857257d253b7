"""Background work on procrastinate, in the same PostgreSQL database."""
