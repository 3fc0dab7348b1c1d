"""Authorize: budgets and rate limits, checked in memory on the hot path."""
