"""OpenTelemetry tracing of inference requests (``otel:`` in the config), off unless enabled.

``record`` holds what a finished request's spans say (pure data → attributes, no OpenTelemetry
import); ``spans`` writes them with the SDK and exports them over OTLP/HTTP from a background
thread. Neither is imported while tracing is off.
"""
