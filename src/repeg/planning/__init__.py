"""From a plan file to the legs the engine executes: parse, derive, check. Nothing here sends an order."""
