"""The pooled keep-alive HTTP/1.1 client keystile uses to call upstream providers."""
