"""Small helpers shared inside framepipe; not a public API."""
