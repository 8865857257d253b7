"""Customer profiles: lifetime history, a health score with its parts, and a loyalty segment."""
