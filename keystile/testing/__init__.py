"""Test and benchmark support shipped with the package: a real mock upstream HTTP server."""
