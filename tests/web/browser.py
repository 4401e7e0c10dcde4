"""How the browser tests and `eval/web_latency.py` start the system Chromium."""

# headless, no sandbox (CI runs as root), no GPU, no background traffic (updates, sync, QUIC)
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
