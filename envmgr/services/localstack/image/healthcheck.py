"""Container health check: the LocalStack gateway answers GET /_localstack/health with HTTP 200."""

import os
import sys
import urllib.request

listen = os.environ.get("GATEWAY_LISTEN", "0.0.0.0:4566").split(",")[0].strip()
port = listen.rsplit(":", 1)[-1] if ":" in listen else "4566"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_localstack/health", timeout=5) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except Exception as e:  # any failure means unhealthy
    sys.stderr.write(f"unhealthy: {e}\n")
    sys.exit(1)
