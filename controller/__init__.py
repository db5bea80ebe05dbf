"""netlab's controller: turns a validated desired state into kernel changes.
Entry point is `netlab.controller.cli:main`."""
