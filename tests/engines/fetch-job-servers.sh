#!/usr/bin/env bash
# Fetch Beam's Flink and Spark job server jars (the Beam version of the installed Python SDK) with
# Maven into a cache folder outside the clone, once per machine; prints the two jar paths.
#   bash tests/engines/fetch-job-servers.sh [JARS_DIR]     (default ~/.cache/wikisnap/jars)
# Then: wikisnap build … --runner FlinkRunner --flink_job_server_jar JARS_DIR/beam-runners-flink-1.20-job-server-V.jar
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../../.venv/bin/python}"
beam_version="$("$python" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null)"
flink_version="${FLINK_VERSION:-1.20}"
jars_dir="${1:-$HOME/.cache/wikisnap/jars}"
mkdir -p "$jars_dir"
mvn -q -B -U -f "$here/pom.xml" dependency:copy \
  -Dbeam.version="$beam_version" -Dflink.version="$flink_version" -Djars.dir="$jars_dir"
echo "$jars_dir/beam-runners-flink-$flink_version-job-server-$beam_version.jar"
echo "$jars_dir/beam-runners-spark-3-job-server-$beam_version.jar"
