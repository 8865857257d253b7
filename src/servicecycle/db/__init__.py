"""Database: engine and sessions, the embedded server, the base model, migrations."""
