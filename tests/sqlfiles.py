"""Writing SQL table dumps for tests from the real ones in tests/data/sql.

`sql_dump` keeps a real dump's preamble and trailer byte for byte (mysqldump comments, `SET`
lines, `ALTER TABLE … KEYS`) and replaces its rows — and, for tables no real sample exists for,
its `CREATE TABLE` block with one modelled on MediaWiki's schema (below).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from conftest import DATA

SQL = DATA / "sql"
RM_PAGE_PROPS = SQL / "wikidata-qrank__rmwiki-20240301-page_props.EXCERPT.sql.gz"
CR_PAGE = SQL / "randomSearcher__crwiki-20160111-page.sql.gz"
CR_REDIRECT = SQL / "randomSearcher__crwiki-20160111-redirect.sql.gz"

# MediaWiki's categorylinks as WMF dumped it before MW 1.45 (sql/mysql/tables-generated.sql).
CATEGORYLINKS_CL_TO = """CREATE TABLE `categorylinks` (
  `cl_from` int(8) unsigned NOT NULL DEFAULT 0,
  `cl_to` varbinary(255) NOT NULL DEFAULT '',
  `cl_sortkey` varbinary(230) NOT NULL DEFAULT '',
  `cl_sortkey_prefix` varbinary(255) NOT NULL DEFAULT '',
  `cl_timestamp` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  `cl_collation` varbinary(32) NOT NULL DEFAULT '',
  `cl_type` enum('page','subcat','file') NOT NULL DEFAULT 'page',
  PRIMARY KEY (`cl_from`,`cl_to`),
  KEY `cl_timestamp` (`cl_to`,`cl_timestamp`),
  KEY `cl_sortkey` (`cl_to`,`cl_type`,`cl_sortkey`,`cl_from`),
  KEY `cl_collation_ext` (`cl_collation`,`cl_to`,`cl_type`,`cl_from`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

# MW 1.45: cl_to is gone, categories are linktarget rows (cl_target_id → lt_id).
CATEGORYLINKS_TARGET_ID = """CREATE TABLE `categorylinks` (
  `cl_from` int(10) unsigned NOT NULL DEFAULT 0,
  `cl_sortkey` varbinary(230) NOT NULL DEFAULT '',
  `cl_sortkey_prefix` varbinary(255) NOT NULL DEFAULT '',
  `cl_timestamp` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  `cl_type` enum('page','subcat','file') NOT NULL DEFAULT 'page',
  `cl_collation_id` smallint(5) unsigned NOT NULL DEFAULT 0,
  `cl_target_id` bigint(20) unsigned NOT NULL,
  PRIMARY KEY (`cl_from`,`cl_target_id`),
  KEY `cl_timestamp_id` (`cl_target_id`,`cl_timestamp`),
  KEY `cl_sortkey_id` (`cl_target_id`,`cl_type`,`cl_sortkey`,`cl_from`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

LINKTARGET = """CREATE TABLE `linktarget` (
  `lt_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `lt_namespace` int(11) NOT NULL,
  `lt_title` varbinary(255) NOT NULL,
  PRIMARY KEY (`lt_id`),
  UNIQUE KEY `lt_namespace_title` (`lt_namespace`,`lt_title`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

PAGE_RESTRICTIONS = """CREATE TABLE `page_restrictions` (
  `pr_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `pr_page` int(10) unsigned NOT NULL,
  `pr_type` varbinary(60) NOT NULL,
  `pr_level` varbinary(60) NOT NULL,
  `pr_cascade` tinyint(4) NOT NULL,
  `pr_expiry` varbinary(14) DEFAULT NULL,
  PRIMARY KEY (`pr_id`),
  UNIQUE KEY `pr_pagetype` (`pr_page`,`pr_type`),
  KEY `pr_typelevel` (`pr_type`,`pr_level`),
  KEY `pr_level` (`pr_level`),
  KEY `pr_cascade` (`pr_cascade`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""


def literal(value) -> str:
    """A Python value as mysqldump writes it."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\x00", "\\0")
    return f"'{text}'"


def sql_dump(path: Path, source: Path, rows, *, create: str | None = None, compress: bool = True) -> Path:
    """Write `rows` as a dump with `source`'s real preamble/trailer (and `create`, if given)."""
    text = gzip.decompress(source.read_bytes()).decode("utf-8")
    head, rest = text.split("\nINSERT INTO", 1)
    tail = rest.split(";\n", 1)[1]
    table = re.search(r"CREATE TABLE `(\w+)`", head).group(1)
    if create is not None:
        new_table = re.search(r"CREATE TABLE `(\w+)`", create).group(1)
        head = re.sub(r"CREATE TABLE `\w+` \(.*?\) ENGINE=[^;]*;", lambda _m: create, head, flags=re.S)
        head, tail = head.replace(f"`{table}`", f"`{new_table}`"), tail.replace(f"`{table}`", f"`{new_table}`")
        table = new_table
    values = ",".join("(" + ",".join(literal(v) for v in row) + ")" for row in rows)
    body = f"\nINSERT INTO `{table}` VALUES {values};\n" if rows else "\n"
    data = (head + body + tail).encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


# Issue 15's tables, as mysqldump writes them (backticked columns, KEY lines), with the columns and
# types of MediaWiki's schema files (tests/data/PROVENANCE.md §4b cites each one).
IMAGE = """CREATE TABLE `image` (
  `img_name` varbinary(255) NOT NULL DEFAULT '',
  `img_size` bigint(20) unsigned NOT NULL DEFAULT 0,
  `img_width` int(11) NOT NULL DEFAULT 0,
  `img_height` int(11) NOT NULL DEFAULT 0,
  `img_metadata` mediumblob NOT NULL,
  `img_bits` int(11) NOT NULL DEFAULT 0,
  `img_media_type` enum('UNKNOWN','BITMAP','DRAWING','AUDIO','VIDEO','MULTIMEDIA','OFFICE','TEXT','EXECUTABLE','ARCHIVE','3D') DEFAULT NULL,
  `img_major_mime` enum('unknown','application','audio','image','text','video','message','model','multipart','chemical') NOT NULL DEFAULT 'unknown',
  `img_minor_mime` varbinary(100) NOT NULL DEFAULT 'unknown',
  `img_description_id` bigint(20) unsigned NOT NULL,
  `img_actor` bigint(20) unsigned NOT NULL,
  `img_timestamp` binary(14) NOT NULL,
  `img_sha1` varbinary(32) NOT NULL DEFAULT '',
  PRIMARY KEY (`img_name`),
  KEY `img_actor_timestamp` (`img_actor`,`img_timestamp`),
  KEY `img_size` (`img_size`),
  KEY `img_timestamp` (`img_timestamp`),
  KEY `img_sha1` (`img_sha1`(10)),
  KEY `img_media_mime` (`img_media_type`,`img_major_mime`,`img_minor_mime`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

WBC_ENTITY_USAGE = """CREATE TABLE `wbc_entity_usage` (
  `eu_row_id` bigint(20) NOT NULL AUTO_INCREMENT,
  `eu_entity_id` varbinary(255) NOT NULL,
  `eu_aspect` varbinary(37) NOT NULL,
  `eu_page_id` int(11) NOT NULL,
  PRIMARY KEY (`eu_row_id`),
  UNIQUE KEY `eu_entity_id` (`eu_entity_id`,`eu_aspect`,`eu_page_id`),
  KEY `eu_page_id` (`eu_page_id`,`eu_entity_id`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

USER_GROUPS = """CREATE TABLE `user_groups` (
  `ug_user` int(10) unsigned NOT NULL DEFAULT 0,
  `ug_group` varbinary(255) NOT NULL DEFAULT '',
  `ug_expiry` varbinary(14) DEFAULT NULL,
  PRIMARY KEY (`ug_user`,`ug_group`),
  KEY `ug_group` (`ug_group`),
  KEY `ug_expiry` (`ug_expiry`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

FLAGGEDPAGES = """CREATE TABLE `flaggedpages` (
  `fp_page_id` int(10) unsigned NOT NULL,
  `fp_reviewed` tinyint(1) NOT NULL DEFAULT 0,
  `fp_pending_since` binary(14) DEFAULT NULL,
  `fp_stable` int(10) unsigned NOT NULL,
  `fp_quality` tinyint(1) DEFAULT NULL,
  PRIMARY KEY (`fp_page_id`),
  KEY `fp_reviewed_page` (`fp_reviewed`,`fp_page_id`),
  KEY `fp_quality_page` (`fp_quality`,`fp_page_id`),
  KEY `fp_pending_since` (`fp_pending_since`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""


def image_row(name: str, width: int, height: int) -> tuple:
    """An image.sql row: name and size are what the tests check; the other columns are neutral filler."""
    return (name, 0, width, height, "", 0, "BITMAP", "image", "jpeg", 0, 0, "20160101000000", "")
