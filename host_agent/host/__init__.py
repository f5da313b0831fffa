"""The host process: identity, labels, inventory, control-interface handlers, heartbeats."""
