import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # labdriver.py


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium against a JupyterLab server")
