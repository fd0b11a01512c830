"""The daemon's HTTP API: AWS Batch's REST API plus localbatch extensions.

- ``routes``: the route table built from botocore's AWS Batch model (method + path ->
  operation, URI labels and query members -> request parameters), used by the server to
  resolve requests and by the client to build them.
- ``errors``: ``ApiError`` (AWS's ``ClientException`` / ``ServerException``) and the one place
  that maps ``LocalbatchError``s to HTTP status codes.
- ``principal``: who the request being handled comes from (set by ``Api.handle`` from its
  authenticator), and the daemon's owner, who the Unix socket's requests come from.
- ``server``: transport-agnostic dispatch (``Api``: parse, validate against the model, call the
  injected ``Dispatcher``, shape the response) and ``ApiServer``, HTTP/1.1 on a Unix socket.

The CLI's side of the wire is ``localbatch.client``. A later TCP listener (SigV4-signed) serves the
same ``Api`` through the same request handler; ``Api`` takes the authentication hook it needs.
"""
