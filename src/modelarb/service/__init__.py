"""The live broker: sells verified solutions, buys attempts in a plan's cascade, books every cent.

Depends on the core (plans) and data layers, never the other way round. See docs/broker.md.
"""
