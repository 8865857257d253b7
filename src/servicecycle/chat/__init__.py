"""Live chat: an embeddable widget for visitors, answered by agents from the workspace."""
