"""keystile's benchmark: ``python -m bench`` (``make bench``); see bench/README.md."""
