"""Persistence of keys, users, teams and spend: SQLite by default, PostgreSQL to scale out."""
