"""Route: public model name to one deployment, with retries, cooldowns and fallbacks."""
