"""The routers ``framepipe.server.create_app`` can mount: one module per service."""
