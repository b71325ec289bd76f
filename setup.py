"""Packaging for keras-quaternion."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
#: C sources shipped inside the package, in keras_quaternion/export/csrc with tflite/'s layout
#: (keras_quaternion.export.c_sources() finds them): the compact quaternion operator, the C
#: front end and the keyword-spotting app, so that an installed keras-quaternion can build,
#: verify and hand them to firmware builds (kq-export --micro --app)
C_SOURCE_FOLDERS = ("quaternion", "frontend", "examples/kws_app")
C_SOURCE_SUFFIXES = (".c", ".cc", ".h", ".py", ".md")


def c_source_files(root: Path = HERE / "tflite"):
    """``(source, path relative to tflite/)`` of every shipped C source file, Makefile, script."""
    for folder in C_SOURCE_FOLDERS:
        for source in sorted((root / folder).rglob("*")):
            relative = source.relative_to(root)
            if "build" in relative.parts or "__pycache__" in relative.parts:
                continue
            if source.is_file() and (
                source.suffix in C_SOURCE_SUFFIXES or source.name == "Makefile"
            ):
                yield source, relative


class BuildWithCSources(build_py):
    """build_py that also copies the C sources of tflite/ into keras_quaternion/export/csrc."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "keras_quaternion" / "export" / "csrc"
        for source, relative in c_source_files():
            dest = target / relative
            self.mkpath(str(dest.parent))
            self.copy_file(str(source), str(dest))


# guarded so that tests can import c_source_files (pip's build backend runs this as __main__)
if __name__ == "__main__":
    setup(
        name="keras-quaternion",
        version="0.1.0",
        description=(
            "Quaternion convolutional networks for audio classification in Keras 3: "
            "layers, PANNs models, pruning, distillation and int8 TFLite Micro export."
        ),
        long_description=(HERE / "README.md").read_text(encoding="utf-8"),
        long_description_content_type="text/markdown",
        license="Apache-2.0",
        python_requires=">=3.11",
        packages=find_packages(include=["keras_quaternion", "keras_quaternion.*"]),
        include_package_data=True,
        cmdclass={"build_py": BuildWithCSources},
        # exactly what the package imports at run time (tests/test_dependencies.py checks it both
        # ways); why tensorflow-model-optimization and tensorflow-io are not here:
        # docs/dependencies.md
        install_requires=[
            "tensorflow>=2.21,<2.22; platform_machine!='x86_64'",
            "tensorflow-cpu>=2.21,<2.22; platform_machine=='x86_64'",
            "keras>=3.12,<4",
            "numpy>=1.26,<3",
            "soundfile>=0.12,<1",
            "soxr>=0.3,<2",
            "audioread>=3.0,<4",
            "flatbuffers>=24.3.25",
            "click>=8.1,<9",
            "tqdm>=4.60,<5",
            "matplotlib>=3.7,<4",
            "h5py>=3.9,<4",
        ],
        extras_require={
            "export": ["ai-edge-litert>=2.0,<3", "tflite-micro"],
            # tfds:NAME datasets (keras_quaternion.datasets.tfds)
            "tfds": ["tensorflow-datasets>=4.9,<5"],
            "dev": [
                "librosa>=0.10,<0.12",  # the tests' reference for features and deltas
                "pytest>=8,<10",
                "pytest-xdist>=3.5,<4",
                "hypothesis>=6.100,<7",
                "ruff>=0.17.6,<0.18",
                "ai-edge-litert>=2.0,<3",
                "tflite-micro",
                "tensorflow-datasets>=4.9,<5",
            ],
            "docs": [
                "mkdocs>=1.6,<2",
                "mkdocs-material>=9.5,<10",
                "mkdocstrings[python]>=1.0,<2",
                "mkdocstrings-python>=2.0,<3",
            ],
        },
        entry_points={
            "console_scripts": [
                "kq=keras_quaternion.cli:main",
                "kq-train=keras_quaternion.cli:train_main",
                "kq-eval=keras_quaternion.cli:eval_main",
                "kq-prune=keras_quaternion.cli:prune_main",
                "kq-distill=keras_quaternion.cli:distill_main",
                "kq-export=keras_quaternion.cli:export_main",
                "kq-predict=keras_quaternion.cli:predict_main",
                "kq-data=keras_quaternion.cli:data_main",
            ]
        },
        classifiers=[
            "Programming Language :: Python :: 3",
            "Topic :: Multimedia :: Sound/Audio :: Analysis",
            "Topic :: Scientific/Engineering :: Artificial Intelligence",
        ],
    )
