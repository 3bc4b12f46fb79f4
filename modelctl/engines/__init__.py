"""Serving engines modelctl drives but does not implement: what each one is (`catalog`), how to
probe a running one and read its load, how to launch one from the registry, and the manifests
that run one elsewhere."""
