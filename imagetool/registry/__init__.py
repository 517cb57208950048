"""A client for the OCI distribution API, layered: connection (http) < auth < retry < API (client)."""
