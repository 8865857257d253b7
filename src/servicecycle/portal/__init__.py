"""The customer portal: customers sign in by magic link or password and follow their requests."""
