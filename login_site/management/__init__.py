"""Management API v2 subset (management-api.md): Auth0's paths, shapes and error format,
authorized by ``client_credentials`` access tokens for ``{issuer}api/v2/``."""
