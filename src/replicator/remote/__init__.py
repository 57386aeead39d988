"""Remote stores: push and pull run directories through fsspec."""
