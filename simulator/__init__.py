"""A local stand-in for Meta's WhatsApp Cloud API (Graph API) on loopback.

Run it with ``python -m simulator`` or build it in-process with
:func:`simulator.app.create_app`. Tests drive it through :class:`simulator.client.SimulatorClient`
and start it as a subprocess with :class:`simulator.process.SimulatorProcess`.
"""
