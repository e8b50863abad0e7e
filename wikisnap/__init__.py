"""wikisnap: Wikimedia Enterprise-format snapshots from public Wikimedia dumps, on Apache Beam.

The Python API (pipelines/api.py), the engine of the `wikisnap` command line:

    import wikisnap

    result = wikisnap.build(["enwiki-20241101-pages-articles.xml.bz2"], out="/data/enwiki")
    wikisnap.publish(result.folder, to="/srv/mirror/enterprise")

`build`, `update`, `publish`, `verify`, `sync`, `recover` and `show` take their command's flags
as keyword arguments and return a `Result`; failures raise a `WikisnapError` carrying the exit
code. They are imported on first use, so `import wikisnap` stays cheap (no Beam, no pyarrow).
"""

__version__ = "0.1.0"

_API = {
    "build": "wikisnap.pipelines.api",
    "update": "wikisnap.pipelines.api",
    "publish": "wikisnap.pipelines.api",
    "verify": "wikisnap.pipelines.api",
    "sync": "wikisnap.pipelines.api",
    "recover": "wikisnap.pipelines.api",
    "show": "wikisnap.pipelines.api",
    "Result": "wikisnap.pipelines.api",
    "Output": "wikisnap.pipelines.api",
    "VerifyFailed": "wikisnap.pipelines.api",
    "SyncFailed": "wikisnap.pipelines.api",
    "WikisnapError": "wikisnap.pipelines.errors",
    "UsageError": "wikisnap.pipelines.errors",
    "RunFailed": "wikisnap.pipelines.errors",
    "RunCrashed": "wikisnap.pipelines.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """Import an API name on first use (PEP 562): `import wikisnap` loads nothing else."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'wikisnap' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
