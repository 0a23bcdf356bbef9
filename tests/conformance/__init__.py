"""The OpenID Foundation OP conformance plans (Basic, Config, RP-Initiated Logout) as tests."""
