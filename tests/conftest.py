pytest_plugins = [
    "tests.support.controlplane",
    "tests.support.crds",
    "tests.support.emulator",
    "tests.support.operator",
]
