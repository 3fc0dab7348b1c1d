"""Bringing keys, users and teams over from another gateway's database (``keystile import …``)."""
