"""What should be and what was done: loading desired-state files, validating them,
the desired-state model and the ownership ledger. Imports nothing of the controller."""
