pytest_plugins = [
    "tests.support.controlplane",
]
