"""Code every family folder carries (symlinked in), so a published folder loads with `trust_remote_code=True` where
adlr_hf is not installed. Not a family: `models.FAMILIES` does not list it."""
