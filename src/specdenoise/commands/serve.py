"""``specdenoise serve``: the web page and HTTP API (FastAPI + uvicorn), offline, loopback by default."""
from __future__ import annotations

HELP = "serve a web page and an HTTP API that denoise uploads (http://127.0.0.1:8000 by default)"


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--model", default="default", help="'default' (shipped) or a checkpoint path")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200)")
    parser.add_argument("--jobs", type=int, default=1, help="denoising jobs run at once, one core each (default 1)")
    parser.add_argument("--queue", type=int, default=8, help="jobs that may wait beyond those (default 8; more get 503)")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="seconds one job may take (default 600)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="longest recording accepted (default 60)")
    parser.add_argument("--retention-minutes", type=float, default=30.0,
                        help="finished jobs and their files are deleted after this long (default 30)")
    parser.add_argument("--workdir", default=None,
                        help="folder for the server's private temp folder (default: the system temp folder)")


def run(args) -> int:
    import asyncio
    import socket
    import sys

    import uvicorn

    from ..errors import ConfigError
    from ..serve import ServeConfig, create_app
    from ..serve.config import is_loopback

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    kwargs = dict(model=args.model, max_upload_mb=args.max_upload_mb, jobs=args.jobs, queue=args.queue,
                  job_timeout_s=args.job_timeout, max_seconds=args.max_minutes * 60,
                  retention_s=args.retention_minutes * 60)
    if args.workdir:
        kwargs["workdir"] = args.workdir
    config = ServeConfig(**kwargs)
    app = create_app(config)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(2048)  # connections wait in the backlog from now on, not refused until uvicorn is up
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"specdenoise serve: http://{shown}:{port}/ (API docs at /docs; Ctrl-C stops)", flush=True)
    if not is_loopback(args.host):
        print(f"specdenoise serve: warning: listening on {args.host}, reachable from other machines",
              file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10,
                                           server_header=False))
    asyncio.run(server.serve(sockets=[sock]))
    return 0
