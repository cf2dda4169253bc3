#!/usr/bin/env bash
# Fill a folder with every wheel pokerl needs except torch, for an offline Linux x86-64 machine.
#
#   scripts/offline_wheels.sh DIR [--python 3.12] [--skip-common] [--no-ffmpeg] [--glibc 2.31]
#
# Run it where a package index is reachable; copy DIR (and the pokerl checkout) to the offline
# machine, install torch there first (or use the one the image has), then:
#   pip install --no-index --find-links DIR -e .
# With --skip-common or --no-ffmpeg the folder lacks some of pokerl's requirements, so install what
# it holds, then pokerl alone onto what the machine already has:
#   pip install --no-index --find-links DIR -r DIR/requirements.txt
#   pip install --no-index --find-links DIR --no-deps -e .
#
# --python X.Y     the offline machine's Python (default: this python3's)
# --skip-common    leave out what GPU images usually have: numpy, tensorboard, pillow, tqdm, pyyaml
# --no-ffmpeg      leave out imageio-ffmpeg (a 68 MB wheel, 165 MB installed; the `mp4` extra: only pokerl-play's
#                  mp4 recording needs it; without it install `-e .` rather than `-e ".[mp4]"`)
# --glibc X.Y      the newest manylinux glibc the offline machine has (default 2.31; `ldd --version`)
# Packages published only as source (e.g. antlr4-python3-runtime, needed by omegaconf) are built
# into wheels here; that works for pure-Python packages, as all such that pokerl needs are.
set -euo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

DIR="" PY="" SKIP_COMMON=0 FFMPEG=1 GLIBC="2.31"
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="${2:?--python needs a version such as 3.12}"; shift 2 ;;
    --python=*) PY="${1#*=}"; shift ;;
    --skip-common) SKIP_COMMON=1; shift ;;
    --no-ffmpeg) FFMPEG=0; shift ;;
    --glibc) GLIBC="${2:?--glibc needs a version such as 2.31}"; shift 2 ;;
    --glibc=*) GLIBC="${1#*=}"; shift ;;
    -h|--help) usage ;;
    -*) echo "offline_wheels.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$DIR" ] || { echo "offline_wheels.sh: one DIR only" >&2; usage; }; DIR="$1"; shift ;;
  esac
done
[ -n "$DIR" ] || usage
PYTHON="${PYTHON:-python3}"
[ -n "$PY" ] || PY="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
[[ "$PY" =~ ^3\.[0-9]+$ ]] || { echo "offline_wheels.sh: --python wants X.Y, got '$PY'" >&2; exit 2; }
[[ "$GLIBC" =~ ^2\.[0-9]+$ ]] || { echo "offline_wheels.sh: --glibc wants 2.N, got '$GLIBC'" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
ABI="cp${PY/./}"

# pokerl's requirements from pyproject.toml, less torch and whatever the flags leave out.
"$PYTHON" - "$ROOT/pyproject.toml" "$SKIP_COMMON" "$FFMPEG" > "$DIR/requirements.txt" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M).group(1)
reqs = re.findall(r'^\s*"([^"]+)"', block, re.M)
reqs += re.findall(r'"([^"]+)"', re.search(r"^mp4\s*=\s*\[(.*?)\]", text, re.M).group(1))  # the mp4 extra
skip = {"torch"}
if sys.argv[2] == "1":
    skip |= {"numpy", "tensorboard", "pillow", "tqdm", "pyyaml"}
if sys.argv[3] == "0":
    skip.add("imageio-ffmpeg")
for req in reqs:
    if re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower() not in skip:
        print(req)
EOF
echo "offline_wheels.sh: wheels for CPython $PY, manylinux x86-64 up to glibc $GLIBC, into $DIR" >&2
echo "  requirements (without torch): $(tr '\n' ' ' < "$DIR/requirements.txt")" >&2

# Every manylinux tag up to the chosen glibc, newest first, plus the legacy aliases.
PLATFORMS=()
for ((minor = ${GLIBC#2.}; minor >= 5; minor--)); do
  PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64")
done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
TARGET=(--only-binary=:all: "${PLATFORMS[@]}" --python-version "$PY" --implementation cp --abi "$ABI")

# An editable install builds pokerl with its build-system requirements: keep them in DIR too.
BUILD_REQS=("setuptools>=68" "wheel")

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# 1. Which of the requirements (and their own needs) are published only as source? Resolve them for
#    this machine, where source is allowed, and build each such one into a wheel in DIR.
"$PYTHON" -m pip install -q --dry-run --ignore-installed --report "$WORK/report.json" \
  -r "$DIR/requirements.txt" "${BUILD_REQS[@]}"
"$PYTHON" - "$WORK/report.json" > "$WORK/sources.txt" <<'EOF'
import json, sys
for item in json.load(open(sys.argv[1], encoding="utf-8"))["install"]:
    if not item["download_info"]["url"].endswith(".whl"):
        print(f"{item['metadata']['name']}=={item['metadata']['version']}")
EOF
while read -r spec; do
  echo "  $spec is published only as source: building a wheel" >&2
  rm -rf "$WORK/src" "$WORK/built"
  "$PYTHON" -m pip download -q --no-deps --no-binary=:all: -d "$WORK/src" "$spec"
  "$PYTHON" -m pip wheel -q --no-deps -w "$WORK/built" "$WORK"/src/*
  for whl in "$WORK"/built/*.whl; do
    case "$(basename "$whl")" in
      *-none-any.whl) cp "$whl" "$DIR/" ;;
      *) echo "offline_wheels.sh: $(basename "$whl") is not pure Python; build it on the target" >&2
         exit 1 ;;
    esac
  done
done < "$WORK/sources.txt"

# 2. Everything for the target Python and platform, wheels only (the ones built above included).
"$PYTHON" -m pip download -q "${TARGET[@]}" --find-links "$DIR" -d "$DIR" \
  -r "$DIR/requirements.txt" "${BUILD_REQS[@]}"
if [ "$SKIP_COMMON" = 1 ]; then  # pulled in again as other packages' needs: the target has them
  for name in numpy pillow tqdm pyyaml tensorboard; do
    find "$DIR" -maxdepth 1 -iname "${name}-*.whl" -delete
  done
fi

echo "offline_wheels.sh: $(find "$DIR" -name '*.whl' | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR" >&2
if [ "$SKIP_COMMON" = 0 ] && [ "$FFMPEG" = 1 ]; then
  echo "  offline: install torch, then  pip install --no-index --find-links $DIR -e ." >&2
else
  echo "  offline: install torch, then  pip install --no-index --find-links $DIR -r $DIR/requirements.txt" >&2
  echo "           and  pip install --no-index --find-links $DIR --no-deps -e ." >&2
fi
