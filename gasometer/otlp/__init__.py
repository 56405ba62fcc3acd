"""OTLP receiver for Claude Code's own telemetry: decoding, mapping to cost events, and
the rules that keep metrics from counting what log records already counted.

No web framework here: the HTTP routes (gasometer.api.otlp) and the gRPC server
(gasometer.otlp.grpc_server) both call `OtlpReceiver`.
"""
