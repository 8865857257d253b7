"""Tables of the portal domain."""

from __future__ import annotations
