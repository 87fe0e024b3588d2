"""Helpers shared by every layer of framepipe (no framepipe imports); not public API."""
