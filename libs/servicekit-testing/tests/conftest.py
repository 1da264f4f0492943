"""The test kit checked the way a service uses it: from a conftest, in a pytest run of its own."""

pytest_plugins = ["pytester"]
