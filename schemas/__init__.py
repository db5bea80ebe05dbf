"""The JSON Schema of the desired-state file format (netlab.schema.json), shipped as
package data: read by `netlab.state.validating` and published for editors."""
