"""A simulator in its own process, reached over loopback: state that survives the death of the trading process.

`server` hosts isolated simulated brokers (one per session name); `client.RemoteBroker` and `client.RemoteFeed`
implement the `Broker` and `QuoteFeed` ports against it. The crash test kills `repeg run` with SIGKILL and
resumes against the same, still running, simulator.
"""
