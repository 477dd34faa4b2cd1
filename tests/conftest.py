import os
import shutil

import pytest


def pytest_report_header(config):
    return [f"nfteach tiers: root={getattr(os, 'geteuid', lambda: -1)() == 0} qemu={bool(shutil.which('qemu-system-x86_64'))}"]


@pytest.fixture
def sim_lab():
    """A started simulator lab per kernel profile; closed after the test."""
    from nfteach import Lab

    labs = []

    def make(kernel="5.10"):
        lab = Lab("sim", kernel=kernel).start()
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()
