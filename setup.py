"""Only one thing pyproject.toml cannot say: the course's notebooks (notebooks/, their only
home) ship inside the wheel as nfteach/notebooks/, for `nfteach course` to copy out."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_notebooks(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads notebooks/ in place
        dest = Path(self.build_lib) / "nfteach" / "notebooks"
        self.mkpath(str(dest))
        for nb in sorted((HERE / "notebooks").glob("*.ipynb")):
            self.copy_file(str(nb), str(dest / nb.name))


setup(cmdclass={"build_py": build_py_with_notebooks})
