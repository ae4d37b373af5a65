"""A small, strict SIP core (RFC 3261 non-INVITE transactions over UDP and TCP, digest auth).

Knows nothing of GB/T 28181, the database or the hub's domains: the application gives
`SipStack` a handler for incoming requests and calls `SipStack.request` for its own.
"""

from gb28181.sip.digest import (
    DigestChallenge,
    DigestCredentials,
    NonceIssuer,
    authorization_for,
    challenge,
    parse_authorization,
    parse_challenge,
    verify,
)
from gb28181.sip.message import (
    CSeq,
    Headers,
    Limits,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    build_request,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    serialize,
)
from gb28181.sip.stack import DROP_REASONS, IncomingRequest, SipStack
from gb28181.sip.transaction import SipTimeout, SipTransportError, Timers
from gb28181.sip.transport import Address, FloodLimits

__all__ = [
    "DROP_REASONS",
    "Address",
    "CSeq",
    "DigestChallenge",
    "DigestCredentials",
    "FloodLimits",
    "Headers",
    "IncomingRequest",
    "Limits",
    "NameAddr",
    "NonceIssuer",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipStack",
    "SipTimeout",
    "SipTransportError",
    "SipUri",
    "Timers",
    "Via",
    "authorization_for",
    "build_request",
    "challenge",
    "make_response",
    "parse_authorization",
    "parse_challenge",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "serialize",
    "verify",
]
