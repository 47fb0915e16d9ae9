"""The HTTP layer: routes that read, dispatch to the data plane and serialise, nothing more."""
