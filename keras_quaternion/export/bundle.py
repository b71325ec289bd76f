"""The deployment bundle: class names and front-end configuration as C, and a buildable app folder.

* :func:`c_sources`: the folder holding the shipped C sources: ``frontend/`` (the C front end
  and its generator ``gen_config.py``), ``examples/kws_app/`` (the keyword-spotting app) and
  ``quaternion/`` (the compact operator's kernel). An installed package carries them in
  ``keras_quaternion/export/csrc``; a source checkout reads ``tflite/``.
* :func:`write_bundle_files`: ``kq-export --micro`` writes ``<name>_labels.h`` (the class
  names, clip length and feature key) and ``kq_frontend_config.h`` (the front end's constants,
  generated for the model's own :class:`~keras_quaternion.features.FeatureConfig` and checked
  against its key).
* :func:`write_app`: ``kq-export --micro --app DIR`` writes a self-contained folder: the
  model files under ``model/``, the front end under ``frontend/``, the app's sources and its
  Makefile (``make host``, ``make tflm TFLM_ROOT=...``, ``make run WAV=... TFLM_ROOT=...``).
* :func:`tflm_library`: the host build of TFLite Micro's library under a checkout.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import sys
from pathlib import Path

from keras_quaternion.files import atomic_write, staged_folder

__all__ = [
    "APP_MARKER",
    "FRONTEND_CONFIG",
    "c_sources",
    "check_app_dir",
    "frontend_config_header",
    "labels_header",
    "tflm_library",
    "write_app",
    "write_bundle_files",
]

#: the front-end configuration header ``--micro`` writes
FRONTEND_CONFIG = "kq_frontend_config.h"
#: the file that marks a folder written by :func:`write_app` (and describes it)
APP_MARKER = "kq_app.json"
#: the folders of the shipped C sources, relative to :func:`c_sources`
PARTS = ("frontend", "examples/kws_app", "quaternion")
#: what is shipped of them: these suffixes, and Makefiles
SHIPPED_SUFFIXES = (".c", ".cc", ".h", ".py", ".md")


def shipped(path: Path) -> bool:
    """Whether a file of the C source folders is shipped (and copied into an app).

    Example:
        >>> shipped(Path("kws_app.c")), shipped(Path("Makefile")), shipped(Path("build/x.o"))
        (True, True, False)
    """
    if "build" in path.parts or "__pycache__" in path.parts:
        return False
    return path.suffix in SHIPPED_SUFFIXES or path.name == "Makefile"


def c_sources() -> Path:
    """The folder holding ``frontend/``, ``examples/kws_app/`` and ``quaternion/``.

    An installed package's copy (``keras_quaternion/export/csrc``), else the ``tflite/`` folder
    of the source checkout the package is imported from.

    Returns:
        A :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: neither folder holds the sources (a broken installation).

    Example:
        >>> folder = c_sources()
        >>> (folder / "frontend" / "kq_frontend.c").is_file()
        True
        >>> (folder / "examples" / "kws_app" / "Makefile").is_file()
        True
    """
    here = Path(__file__).resolve().parent
    candidates = (here / "csrc", here.parents[1] / "tflite")
    for folder in candidates:
        if (
            all((folder / part).is_dir() for part in PARTS)
            and (folder / "frontend" / "gen_config.py").is_file()
        ):
            return folder
    raise FileNotFoundError(
        f"The C sources (frontend/, examples/kws_app/, quaternion/) are neither in "
        f"{candidates[0]} nor in {candidates[1]}; reinstall keras-quaternion (pip install .)."
    )


def _gen_config():
    """The front end's generator ``gen_config.py``, imported from :func:`c_sources`."""
    name = "keras_quaternion_gen_config"
    if name in sys.modules:
        return sys.modules[name]
    path = c_sources() / "frontend" / "gen_config.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def frontend_config_header(info) -> str:
    """``kq_frontend_config.h`` for a model's features, checked against the model's key.

    Args:
        info: the model's :class:`~keras_quaternion.model_info.ModelInfo`.

    Returns:
        The header text (``tflite/frontend/gen_config.py``'s ``render_header``).

    Raises:
        ValueError: the features cannot be computed by the C front end (``n_fft`` not a power of
            two), or the header's ``KQ_FRONTEND_CONFIG_KEY`` is not the model's feature key.

    Example:
        >>> from keras_quaternion.features import FeatureConfig
        >>> from keras_quaternion.model_info import ModelInfo
        >>> info = ModelInfo(FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80,
        ...                  n_mels=32, fmax=4000.0).to_dict(), 1.0, ("a", "b"))
        >>> "#define KQ_FRONTEND_N_MELS 32" in frontend_config_header(info)
        True
    """
    config = info.features()
    text = _gen_config().render_header(config)
    match = re.search(r'^#define KQ_FRONTEND_CONFIG_KEY "([0-9a-f]+)"', text, re.MULTILINE)
    if match is None or match.group(1) != config.cache_key():
        found = match.group(1) if match else None
        raise ValueError(
            f"The generated {FRONTEND_CONFIG} has the feature key {found!r} but the model's is "
            f"{config.cache_key()!r}: the C front end would compute other features than the "
            "model was trained on (gen_config.py and keras_quaternion.features disagree; "
            "reinstall)."
        )
    return text


def clip_samples(info) -> int:
    """Samples per clip of a model: ``round(clip_seconds * sample_rate)``."""
    return int(round(info.clip_seconds * info.sample_rate))


def feature_key(info) -> str:
    """The model's feature key: ``FeatureConfig.cache_key()`` of its features."""
    return info.features().cache_key()


def _c_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if 32 <= ord(c) < 127 else f"\\{ord(c):03o}" for c in escaped) + '"'


def labels_header(info, name: str = "model", outputs: str = "probabilities") -> str:
    """The text of ``<name>_labels.h``: class names, clip length and feature key of the model.

    Defines ``<NAME>_NUM_LABELS``, ``<NAME>_LABELS`` (a brace initializer), ``<NAME>_MULTI_LABEL``,
    ``<NAME>_OUTPUT_LOGITS``, ``<NAME>_CLIP_SAMPLES``, ``<NAME>_SAMPLE_RATE``,
    ``<NAME>_FEATURE_KEY``, and, unless already defined, the ``KWS_LABELS*`` macros the
    keyword-spotting app reads.

    Example:
        >>> from keras_quaternion.features import FeatureConfig
        >>> from keras_quaternion.model_info import ModelInfo
        >>> info = ModelInfo(FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80,
        ...                  n_mels=32, fmax=4000.0).to_dict(), 1.0, ("yes", 'say "no"'))
        >>> [line for line in labels_header(info).splitlines() if "MODEL_LABELS " in line]
        ['#define MODEL_LABELS { "yes", "say \\\\"no\\\\"" }']
    """
    from keras_quaternion.export.micro import micro_symbols

    guard = micro_symbols(name)["guard"]
    names = ", ".join(_c_string(n) for n in info.class_names)
    lines = [
        "/* Generated by keras-quaternion (kq-export --micro). Do not edit; export again instead.",
        " * The model's classes in output order, the clip it scores and its features' key. */",
        f"#ifndef KQ_{guard}_LABELS_H_",
        f"#define KQ_{guard}_LABELS_H_",
        "",
        f"#define {guard}_NUM_LABELS {len(info.class_names)}",
        f"#define {guard}_LABELS {{ {names} }}",
        f"#define {guard}_MULTI_LABEL {int(info.multi_label)}",
        f"#define {guard}_OUTPUT_LOGITS {int(outputs == 'logits')}",
        f"#define {guard}_CLIP_SAMPLES {clip_samples(info)}",
        f"#define {guard}_SAMPLE_RATE {info.sample_rate}",
        f'#define {guard}_FEATURE_KEY "{feature_key(info)}"',
        "",
        "/* what examples/kws_app reads */",
    ]
    for suffix in ("", "_CLIP_SAMPLES", "_FEATURE_KEY"):
        source = {"": "LABELS"}.get(suffix, suffix[1:])
        lines += [f"#ifndef KWS_LABELS{suffix}", f"#define KWS_LABELS{suffix} {guard}_{source}"]
        lines.append("#endif")
    lines += ["", f"#endif  /* KQ_{guard}_LABELS_H_ */", ""]
    return "\n".join(lines)


def write_bundle_files(out_dir, info, name: str = "model", outputs: str = "probabilities"):
    """Write ``<name>_labels.h`` and ``kq_frontend_config.h`` into ``out_dir`` (atomically).

    Args:
        out_dir: the export folder (exists).
        info: the model's :class:`~keras_quaternion.model_info.ModelInfo`.
        name: the micro files' C name (:func:`~keras_quaternion.export.micro.micro_symbols`).
        outputs: ``"probabilities"`` or ``"logits"``: what the model's output holds.

    Returns:
        The written file names.

    Raises:
        ValueError: as :func:`frontend_config_header`.
    """
    from keras_quaternion.export.micro import micro_symbols

    labels = f"{name}_labels.h"
    micro_symbols(name)  # checks the name
    config = frontend_config_header(info)
    atomic_write(os.path.join(out_dir, labels), labels_header(info, name, outputs))
    atomic_write(os.path.join(out_dir, FRONTEND_CONFIG), config)
    return [labels, FRONTEND_CONFIG]


def tflm_library(root) -> Path:
    """The host build of TFLite Micro's library under the checkout ``root``.

    ``gen/<os>_<cpu>_*/lib/libtensorflow-microlite.a`` (e.g. ``gen/linux_x86_64_default_gcc``):
    never a cross-compiled one (``gen/cortex_m_generic_...``), which the host cannot link.

    Raises:
        FileNotFoundError: no host library (the message lists what ``gen/`` holds).

    Example:
        >>> tflm_library("no-tflm-here")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No host build of TFLite Micro under 'no-tflm-here': ...
    """
    root = Path(root)
    host = f"{platform.system().lower()}_{platform.machine()}"
    found = sorted(root.glob(f"gen/{host}_*/lib/libtensorflow-microlite.a"))
    if found:
        return found[0]
    others = sorted(str(p.relative_to(root)) for p in root.glob("gen/*/lib/*.a"))
    raise FileNotFoundError(
        f"No host build of TFLite Micro under '{root}': expected "
        f"gen/{host}_*/lib/libtensorflow-microlite.a, found {others or 'nothing'}; run "
        "`make -f tensorflow/lite/micro/tools/make/Makefile microlite` there (without TARGET=)."
    )


def check_app_dir(app_dir) -> bool:
    """Check that ``--app DIR`` may be written: missing, empty, or a previous app.

    Returns:
        Whether ``app_dir`` holds a previous app (replaced as a whole).

    Raises:
        ValueError: ``app_dir`` is a file, or a non-empty folder without :data:`APP_MARKER`.

    Example:
        >>> check_app_dir("new-app")
        False
    """
    app_dir = Path(app_dir)
    if not app_dir.exists():
        return False
    if not app_dir.is_dir():
        raise ValueError(f"--app '{app_dir}' exists and is not a folder.")
    if (app_dir / APP_MARKER).is_file():
        return True
    entries = sorted(os.listdir(app_dir))
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"--app '{app_dir}' is not empty ({shown}) and is not an app kq-export wrote (it "
            f"has no {APP_MARKER}); give a new or empty folder."
        )
    return False


def _copy_tree(source: Path, target: Path) -> list[str]:
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and shipped(relative):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
            copied.append(str(relative))
    return copied


def _app_config(info, name: str) -> str:
    """``app_config.mk``: where the app's Makefile finds the model and the front end."""
    from keras_quaternion.export.micro import micro_symbols

    lines = [
        "# Generated by kq-export --app: the settings of this app's Makefile.",
        "ART = model",
        "FRONTEND = frontend",
        f"NAME = {name}",
        f"CLIP_SAMPLES = {clip_samples(info)}",
        "# the Python that wrote this app (numpy, soundfile: wav_to_header.py); PYTHON= overrides",
        f"KQ_PYTHON = {sys.executable}",
        "PYTHON ?= $(if $(wildcard $(KQ_PYTHON)),$(KQ_PYTHON),python3)",
    ]
    if name != "model":
        sym = micro_symbols(name)
        defines = {
            "KWS_MODEL_DATA_HEADER": f"'\"{sym['data_h']}\"'",
            "KWS_MODEL_OPS_HEADER": f"'\"{sym['ops_h']}\"'",
            "KWS_MODEL_LABELS_HEADER": f"'\"{name}_labels.h\"'",
            "KWS_MODEL_DATA": sym["data"],
            "KWS_MODEL_ARENA_SIZE": sym["arena"],
            "KWS_MODEL_OP_RESOLVER": sym["resolver"],
            "KWS_MODEL_REGISTER_OPS": sym["register"],
        }
        lines.append("MODEL_DEFINES = " + " ".join(f"-D{k}={v}" for k, v in defines.items()))
    return "\n".join(lines) + "\n"


_README = """# {model}: keyword-spotting app

Written by `kq-export --micro --app` (keras-quaternion {version}) for `{model}`
({strategy} export, {classes} classes, clips of {clip} samples at {rate} Hz).

| folder | what |
|---|---|
| `model/` | the exported model: `{name}_data.cc/.h`, `{name}_ops.h`, `{name}_labels.h`, `kq_frontend_config.h`, the `.tflite` and `export_report.json` |
| `frontend/` | the C front end (log-mel, delta, delta-delta, delta-delta-delta), configured by `model/kq_frontend_config.h` |
| `.` | the app (`kws_app.c`, `main_device.cc`, `kws_model_tflm.cc`), `host/` (stand-in interpreter) and `Makefile` |

```bash
make host                                  # front end + app with the stand-in interpreter
make tflm WAV=clip.wav TFLM_ROOT=/path/to/tflite-micro    # against TFLite Micro's host library
make run WAV=clip.wav TFLM_ROOT=/path/to/tflite-micro     # build and run: prints "label: NAME"
```

`make audio` (run by `tflm` and `run`) turns the WAV into `build/audio_sample.h` with a Python
that has numpy and soundfile (default: the one that wrote this folder; `PYTHON=` overrides).
The WAV must be at {rate} Hz. See docs/deploy.md of keras-quaternion for device builds.
"""


def write_app(app_dir, export_dir, report: dict, info, name: str = "model") -> dict:
    """Write the app folder for an export with micro files (``kq-export --micro --app DIR``).

    Args:
        app_dir: the app folder: new, empty, or a previous app (replaced as a whole).
        export_dir: the export folder (the report's ``.tflite`` and micro files).
        report: the export report (:func:`~keras_quaternion.export.export_model`'s result).
        info: the model's :class:`~keras_quaternion.model_info.ModelInfo`.
        name: the micro files' C name.

    Returns:
        The app description written to :data:`APP_MARKER`.

    Raises:
        ValueError: ``app_dir`` is refused (:func:`check_app_dir`), or the export has no micro
            files, or is not int8.
    """
    previous = check_app_dir(app_dir)
    micro, export = report.get("micro") or {}, report["export"]
    if not micro.get("files") or FRONTEND_CONFIG not in micro["files"]:
        raise ValueError("--app needs the micro files and the front-end configuration (--micro).")
    if export["format"] != "int8":
        raise ValueError(
            "--app builds int8 models only (the app quantizes its input): drop --float."
        )
    sources = c_sources()
    replaces = set(os.listdir(app_dir)) if previous else set()
    with staged_folder(app_dir, replaces=replaces) as stage:
        files = _copy_tree(sources / "examples" / "kws_app", stage)
        for header in ("kq_frontend.c", "kq_frontend.h"):
            (stage / "frontend").mkdir(exist_ok=True)
            shutil.copyfile(sources / "frontend" / header, stage / "frontend" / header)
        (stage / "model").mkdir()
        for item in [*micro["files"], export["tflite"], "export_report.json"]:
            shutil.copyfile(Path(export_dir) / item, stage / "model" / item)
        atomic_write(stage / "app_config.mk", _app_config(info, name))
        description = _describe(report, info, name, files)
        atomic_write(stage / "README.md", _readme(description))
        atomic_write(stage / APP_MARKER, json.dumps(description, indent=1) + "\n")
    return description


def _describe(report, info, name, files) -> dict:
    from keras_quaternion import __version__

    return {
        "written_by": f"keras-quaternion {__version__} (kq-export --micro --app)",
        "model": report["model"]["name"],
        "quaternion": report["export"]["quaternion"],
        "name": name,
        "class_names": list(info.class_names),
        "sample_rate": info.sample_rate,
        "clip_samples": clip_samples(info),
        "feature_key": feature_key(info),
        "app_files": files,
    }


def _readme(description: dict) -> str:
    return _README.format(
        model=description["model"],
        version=description["written_by"].split()[1],
        strategy=description["quaternion"],
        classes=len(description["class_names"]),
        clip=description["clip_samples"],
        rate=description["sample_rate"],
        name=description["name"],
    )
