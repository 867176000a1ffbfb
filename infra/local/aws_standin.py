"""Local DynamoDB + S3 stand-in for callbot's tests: moto's server with requests serialised.

moto's own `moto_server` handles requests on many threads without isolating them; under
concurrent TransactWriteItems it fails with "dictionary changed size during iteration" (HTTP 500)
and could interleave two transactions. Real DynamoDB executes each request atomically, so this
launcher runs every request under one lock: each call is atomic, as in the real service, while
connections are still accepted concurrently.

Usage: python aws_standin.py --host 127.0.0.1 --port 5055
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialised:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialise the response inside the lock so no backend work escapes it.
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args()
    import os

    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
