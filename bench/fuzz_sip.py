"""Coverage-guided fuzzing of the SIP core's parsers (atheris, libFuzzer's engine).

    pip install atheris
    python -m bench.fuzz_sip -atheris_runs=2000000      # libFuzzer flags pass through

Feeds arbitrary bytes to the whole parse path of gb28181.sip: a datagram to parse_message
(default and tight limits), the same bytes as a TCP stream cut into reads of arbitrary sizes
through StreamFramer, and as Authorization / WWW-Authenticate values to the digest parsers.
Fails on any exception but SipParseError escaping them. tests/test_sip_parser.py runs the same
harness under hypothesis in the suite; this finds what random search does not.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import gb28181.sip.digest
    import gb28181.sip.message
    import gb28181.sip.transport  # noqa: F401

from tests.test_sip_parser import REQUEST, parse_any


def one_input(data: bytes) -> None:
    """First byte: the stream read size (low 6 bits), and whether the rest is used as is or
    spliced into a valid REGISTER (high bit; the second byte picks where, and how much of the
    REGISTER it replaces), so that the search starts deep in the parser, not at the start line."""
    if len(data) < 2:
        return
    step, rest = data[0] % 64, data[2:]
    if data[0] & 0x80:
        at = data[1] * len(REQUEST) // 256
        rest = REQUEST[:at] + rest + REQUEST[at + (data[1] % 16) :]
    parse_any(rest, step)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
