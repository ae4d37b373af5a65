"""Four-level networking (cascade): the hub as a lower platform of upper GB/T 28181 platforms.

An uplink (`models.UplinkIn`, kept by `store`) names an upper platform: the hub registers to
it from the GB server's own socket (`session`), answers its catalog, device info and status
queries (`catalog`), and forwards the incidents of its area as GB alarms (`alarms`,
`forwarder`), at least once, through an outbox written in each incident's own transaction.
"""
