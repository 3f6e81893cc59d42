"""Serve a bench app under the service's own Gunicorn + Uvicorn configuration.

python -m bench.serve bare|seed --port 8001 [--workers 2]
"""

from __future__ import annotations

import argparse
from typing import Any

from service.core.logging import configure_logging
from service.server import run


def _bare() -> Any:
    from bench.bare_app import app

    return app


def _seed() -> Any:
    from bench.seed_app import app

    return app


LOADERS = {"bare": _bare, "seed": _seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=sorted(LOADERS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configure_logging("INFO")
    run(
        host=args.host,
        port=args.port,
        workers=args.workers,
        graceful_timeout=30,
        loader=LOADERS[args.app],
    )


if __name__ == "__main__":
    main()
