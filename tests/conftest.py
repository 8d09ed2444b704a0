pytest_plugins = [
    "tests.support.controlplane",
    "tests.support.crds",
]
