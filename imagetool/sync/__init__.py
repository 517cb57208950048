"""skopeo's sync as a library: what a sync source names (jobs) and its YAML file (config)."""
