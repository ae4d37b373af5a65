"""The console under load, in Debian's Chromium: the duty board's first render with 2,000 open
incidents, and how long an update takes to reach the screen while 20 arrive a second.

    python -m bench.console_render [--incidents 2000] [--rate 20] [--seconds 10]

Runs `shaobing api` (serving the built console: `make console` first) against a scratch
database on SB_BENCH_DATABASE_URL's or SB_TEST_DATABASE_URL's server. First render: from the
navigation to every incident on the board. Updates: incidents accepted through the API at the
rate; for each, the time from its `incident.updated` message arriving in the page to its row
showing the new state (a MutationObserver), and the page's long tasks (over 50 ms).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

import httpx
import psycopg
from playwright.sync_api import sync_playwright

from bench.ingest import AREA, database_server, drop_database, prepare_database
from bench.latency import quantiles
from hub.embedded.ports import free_port, wait_for_port

CHROMIUM = "/usr/bin/chromium"
# Kept in the page: when each update arrived on the stream and when its row changed.
PROBE = """
window.__arrived = {}; window.__shown = {}; window.__long = [];
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (m) => {
      const event = JSON.parse(m.data);
      if (event.type === 'incident.updated') window.__arrived[event.id] = performance.now();
    });
  }
};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__long.push(entry.duration);
}).observe({ type: 'longtask', buffered: true });
new MutationObserver(() => {
  for (const id of Object.keys(window.__arrived)) {
    if (window.__shown[id]) continue;
    const row = document.querySelector(`[data-incident-id="${id}"]`);
    if (row && !row.textContent.includes('待受理')) window.__shown[id] = performance.now();
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20, help="updates a second")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    server = database_server()
    with ExitStack() as stack:
        database_url = prepare_database(server, [])
        stack.callback(drop_database, server, database_url)
        ids = _open_incidents(database_url, args.incidents)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
            "SB_DATABASE_URL": database_url, "SB_API_BIND": f"127.0.0.1:{port}",
            "SB_LOG_LEVEL": "WARNING", "SB_SECRET": "bench-secret",
            "SB_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
        }  # fmt: skip
        token = subprocess.run(
            [sys.executable, "-m", "shaobing.cli", "token", "create", "--role", "dispatcher"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        api = subprocess.Popen([sys.executable, "-m", "shaobing.cli", "api"], env=env)
        stack.callback(api.wait, 30)
        stack.callback(api.send_signal, signal.SIGTERM)
        assert wait_for_port("127.0.0.1", port, timeout=60), "the API did not start"
        base = f"http://127.0.0.1:{port}"
        first, arrived, shown, long_tasks = _measure(base, token, ids, args)
    latencies = [shown[i] - arrived[i] for i in arrived if i in shown]
    print(f"console, {args.incidents} open incidents: first render {first:.0f} ms"
          " (navigation → every incident on the board)")  # fmt: skip
    print(
        f"  updates at {args.rate:g}/s for {args.seconds:g} s: {len(latencies)} of"
        f" {len(arrived)} shown; arrival → on screen {quantiles([ms / 1000 for ms in latencies])}"
    )
    print(
        f"  long tasks while updating: {len(long_tasks)}, longest"
        f" {max(long_tasks, default=0):.0f} ms"
    )


def _open_incidents(database_url: str, count: int) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "INSERT INTO incidents (group_key, category, priority, status, area, site, building,"
            " title, created_at, updated_at, accept_by, resolve_by, accept_deadline,"
            " resolve_deadline, signal_count, first_signal_at, last_signal_at)"
            " SELECT 'bench-' || n, 'fire', (ARRAY['emergency','major','routine'])[1 + n %% 3],"
            " 'reported', %s, '压测小区', (n %% 40) || '栋', '压测事件 ' || n, now(), now(),"
            " now() + interval '30m', now() + interval '4h', now() + interval '30m',"
            " now() + interval '4h', 1, now(), now() FROM generate_series(1, %s) n"
            " RETURNING id",
            (AREA, count),
        ).fetchall()
    return [row[0] for row in rows]


def _measure(
    base: str, token: str, ids: list[int], args: argparse.Namespace
) -> tuple[float, dict[str, float], dict[str, float], list[float]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.add_init_script(PROBE)
        page.add_init_script(f"sessionStorage.setItem('sb_token', {token!r})")
        page.goto(base + "/")
        page.wait_for_function(
            f"document.querySelectorAll('[data-incident-id]').length >= {len(ids)}",
            timeout=120_000,
        )
        first = float(page.evaluate("performance.now()"))
        fetches = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.includes('/incidents'))"
            ".map(e => [e.startTime, e.responseEnd])"
        )
        print("  incident pages fetched (start → end, ms): "
              + ", ".join(f"{a:.0f}→{b:.0f}" for a, b in fetches))  # fmt: skip
        page.wait_for_selector("text=实时")
        page.evaluate("window.__long = []")
        _accept_at_rate(base, token, ids, args.rate, args.seconds)
        time.sleep(2)  # the last updates reach the screen
        arrived, shown, long_tasks = page.evaluate(
            "[window.__arrived, window.__shown, window.__long]"
        )
        browser.close()
    return first, arrived, shown, long_tasks


def _accept_at_rate(base: str, token: str, ids: list[int], rate: float, seconds: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        start = time.monotonic()
        for n, incident_id in enumerate(ids[: int(rate * seconds)]):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.post(f"/api/v1/incidents/{incident_id}/actions", json={"action": "accept"})


if __name__ == "__main__":
    main()
