"""The replay market: recorded attempts served as OpenAI-compatible providers, and the live check."""
