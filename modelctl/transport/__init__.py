"""HTTP plumbing shared by the backends (`modelctl.backends`) and the store (`modelctl.store`):
below both, above the base modules (config, errors, redaction).

    http_client       `HttpClient` (one httpx client per service), HTTP failures as modelctl
                      errors, huggingface_hub's session hooks, `transport_reason`
    retry             bounded retries with backoff, `Retry-After`
    sse               server-sent events from a stream of lines
    debug_log         `--debug`: requests and answers described, credentials hidden
    urls              checking service addresses, hiding the credentials written into them
    response_limits   bounds on what a server can make modelctl read (bytes, values, time)
    wire              JSON from a server, checked before anything uses it
    server_text       a server's words made fit for a message
    ollama_server     the Ollama server's address and names, for both Ollama halves
    httpx_import      httpx, imported on demand without its command-line client

Nothing here imports the registry, the backends, the store, the chat or the CLI; importing this
package costs nothing (httpx is imported when a client is made).
"""
