"""`python -m procore_sandbox --port 5001 --seed demo`: serve the sandbox on one origin."""

from __future__ import annotations

import argparse
import logging
import signal

from procore_sandbox.config import SandboxConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; SANDBOX_* environment variables fill what flags leave out."""
    parser = argparse.ArgumentParser(prog="python -m procore_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--seed", choices=("demo", "large", "empty"), default="demo")
    parser.add_argument("--data", metavar="FILE", help="keep state in FILE across restarts")
    parser.add_argument("--client-id", help="registered app client id (SANDBOX_CLIENT_ID)")
    parser.add_argument("--client-secret", help="registered app secret (SANDBOX_CLIENT_SECRET)")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="registered redirect URI, repeatable (SANDBOX_REDIRECT_URIS, comma-separated)",
    )
    parser.add_argument(
        "--token-lifetime", type=int, help="access token expires_in seconds (default 5400)"
    )
    parser.add_argument("--rate-limit-hourly", type=int)
    parser.add_argument("--rate-limit-spike", type=int)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the app from flags and serve it with a threaded server."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = SandboxConfig.from_env(
        seed=args.seed,
        data_file=args.data,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uris,
        token_lifetime=args.token_lifetime,
        rate_limit_hourly=args.rate_limit_hourly,
        rate_limit_spike=args.rate_limit_spike,
    )
    from procore_sandbox.app import create_app
    from procore_sandbox.testing import make_server

    app = create_app(config)
    server = make_server(args.host, args.port, app)
    print(f"Procore sandbox on http://{args.host}:{server.server_port} (seed {args.seed})")
    print(f"  OAuth app: client id {config.client_id}; every seeded user's password: sandbox")

    def stop(signum, frame):  # SIGTERM (honcho, kill): leave through the flush below
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.extensions["procore_sandbox"].store.flush()


if __name__ == "__main__":
    main()
