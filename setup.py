"""wikisnap: Wikimedia Enterprise-format snapshots from public Wikimedia dumps, on Apache Beam.

The design card fixes the top-level folders (`pipelines/`, `transforms/`, `schemas/`, `configs/`);
they install as sub-packages of `wikisnap` so nothing generic lands in site-packages, and
`--setup_file ./setup.py` ships the same layout to remote Beam workers.
"""

from setuptools import setup

VERSION = "0.1.0"
HF = ["datasets>=3.0", "huggingface_hub>=0.24", "pyyaml>=6"]
REPORT = ["matplotlib>=3.7"]  # matplotlib: PSF-based licence, Apache-2.0 compatible

setup(
    name="wikisnap",
    version=VERSION,
    description="Wikimedia Enterprise-format snapshots (NDJSON + Parquet) from public Wikimedia dumps, on Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=[
        "wikisnap",
        "wikisnap.pipelines",
        "wikisnap.transforms",
        "wikisnap.transforms.formats",
        "wikisnap.transforms.parse",
        "wikisnap.transforms.update",
        "wikisnap.schemas",
        "wikisnap.configs",
    ],
    package_dir={
        "wikisnap": "wikisnap",
        "wikisnap.pipelines": "pipelines",
        "wikisnap.transforms": "transforms",
        "wikisnap.transforms.formats": "transforms/formats",
        "wikisnap.transforms.parse": "transforms/parse",
        "wikisnap.transforms.update": "transforms/update",
        "wikisnap.schemas": "schemas",
        "wikisnap.configs": "configs",
    },
    package_data={"wikisnap.configs": ["*.toml"], "wikisnap.schemas": ["*.json"]},
    include_package_data=True,
    install_requires=[
        "apache-beam>=2.60,<3",
        "lxml>=5.0",
        "pyarrow>=15",
        "fsspec>=2024.2",
        # lexbor HTML5 parser: Parsoid HTML inputs (transforms/html.py; MIT licence)
        "selectolax>=1.0",
        # fsspec's HTTP(S) filesystem: dumps and dump runs read straight from a mirror
        "aiohttp>=3.9",
        # ISA-L gzip (PSF-2.0): members written 3x faster than zlib at the same size; stdlib fallback
        "isal>=1.6",
        # parallel C++ bz2 decoder (MIT/Apache-2.0): 1.3x the stdlib on one thread, runs beside the
        # parse on more; stdlib fallback where no wheel exists. <2: a block range of a single-stream
        # dump starts it from a block index it is given (codecs.bz2_from_block), which 1.6-1.7 trust;
        # a later major version may not (the stdlib then decodes the range, as tests check)
        "indexed_bzip2>=1.6,<2",
        # JSON encoder (Apache-2.0 OR MIT): WME lines 3x faster than the stdlib's, the same bytes;
        # stdlib fallback where no wheel exists
        "orjson>=3.10",
    ],
    extras_require={
        # `wikisnap publish --layout hf`: the dataset card's features and the upload
        "hf": HF,
        # `wikisnap sync`'s run report: plots drawn as PNGs inside a self-contained HTML page
        "report": REPORT,
        # mwparserfromhell: the tests' oracle for the wikitext scanner (tests/test_wikitext.py); never imported by wikisnap
        # hypothesis (MPL-2.0): the property tests of names from the data (tests/test_boundaries_paths.py)
        # pytest-xdist (MIT): `pytest -n 2` runs the suite on both cores of a CI machine (.ci/run), about
        # half the wall time of one process; each test has its own tmp_path and port, so none share state
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "jsonschema>=4.18",
            "mwparserfromhell>=0.6.6",
            "hypothesis>=6.100",
            *HF,
            *REPORT,
        ],
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "jsonschema>=4.18",
            "mwparserfromhell>=0.6.6",
            "hypothesis>=6.100",
            "ruff>=0.5",
            *HF,
            *REPORT,
        ],
        "gcp": ["apache-beam[gcp]", "gcsfs"],
        "s3": ["s3fs"],
        # peers measured by benchmarks/run.py; never imported by wikisnap itself
        # the documentation site (mkdocs.yml; CI runs `mkdocs build --strict`)
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5"],
        "bench": ["wikiextractor==3.1.0", "mwxml>=0.3.3", "mwparserfromhell>=0.6.6", "smart-open>=7"],
    },
    entry_points={"console_scripts": ["wikisnap=wikisnap.pipelines.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
    ],
)
