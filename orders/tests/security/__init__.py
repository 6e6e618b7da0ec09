"""Security tests, one module per surface: hostile input to the API, who may use the API, the
console, admin and the websocket, signing in, secrets in logs, and production settings and
headers. docs/security.md maps each threat to its test.

Most tests need no Temporal: they are about requests that must be refused before anything
happens, and they point TEMPORAL_ADDRESS at a closed port (the `no_temporal` fixture) so that a
check that wrongly let a request through fails fast (503) and is caught by the "nothing written"
assertions.
"""
