"""Imported by Python at start-up when this folder is on PYTHONPATH (the test fixture puts it there): a subprocess a
test starts screens with the stub classifier, as the test process does."""

import os

if os.environ.get("FTAUDIT_STUB_CLASSIFIER"):
    import harm_stub

    harm_stub.apply()
