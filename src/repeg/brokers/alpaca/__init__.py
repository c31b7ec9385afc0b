"""Alpaca (paper and live) behind the `Broker` port.

Entry point: `repeg.brokers.alpaca.factory.build_alpaca`; the adapter is `adapter.AlpacaBroker`, the dry-run
wrapper `dryrun.DryRunBroker`, the quote feed `repeg.market.alpaca_feed.AlpacaQuoteFeed`. Set-up and safety
flags: docs/ALPACA.md. (Nothing is re-exported here: the feed imports this package's submodules.)
"""
