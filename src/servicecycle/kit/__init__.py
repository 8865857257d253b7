"""Domain-free building blocks: errors, pagination, clock. Nothing here imports a domain."""
