"""Coverage-guided fuzzing of the receiver's packet parser (atheris, libFuzzer's engine).

    pip install atheris
    python -m bench.fuzz_mqtt -atheris_runs=2000000      # libFuzzer flags pass through

Feeds arbitrary bytes, cut into reads of arbitrary sizes, to BatchingClient's read path on
MQTT 5 and 3.1.1, and fails on any exception escaping it (paho answers a malformed packet
with an error code and a closed socket, never an exception). tests/test_mqtt_parser.py runs
the same harness under hypothesis in the suite; this finds what random search does not.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import ingest.mqtt_client  # noqa: F401

from tests.test_mqtt_parser import decode


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    v5 = bool(data[0] & 1)
    step = data[1] or 1
    body = data[2:]
    chunks = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    decode(chunks, v5, fast=True)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
