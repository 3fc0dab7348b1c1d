"""Account: usage read from responses, its cost from the price table, spend recorded off the hot path."""
