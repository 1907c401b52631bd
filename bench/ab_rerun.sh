#!/usr/bin/env bash
# Interleaved no-change reruns over the tiny-file tree: hoard from two checkouts, and `find`.
#
#   bench/ab_rerun.sh /path/to/before/src ./src [ROUNDS]
#
# Each checkout's src/ is put first on PYTHONPATH of this checkout's .venv. The tree is
# $TREE, by default bench/.work/data/tree (made by bench/run.py); the first push that makes
# the catalog runs once, with the second checkout, into bench/.work/ab-rerun-NAME/ (NAME:
# the tree folder's name). Prints one line per run.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); ROUNDS=${3:-4}
here=$(cd "$(dirname "$0")" && pwd); py="$here/../.venv/bin/python"
tree=$(realpath "${TREE:-$here/.work/data/tree}"); work="$here/.work/ab-rerun-$(basename "$tree")"
mkdir -p "$work"
hoard=(-m hoard push "$tree" --to "$work/dest" --catalog "$work/catalog.sqlite" -q)
[ -f "$work/catalog.sqlite" ] || env PYTHONPATH="$B" "$py" "${hoard[@]}" > /dev/null
for _ in $(seq "$ROUNDS"); do
  for v in A B find; do
    case $v in
      A) cmd=(env PYTHONPATH="$A" "$py" "${hoard[@]}");;
      B) cmd=(env PYTHONPATH="$B" "$py" "${hoard[@]}");;
      find) cmd=(find "$tree" -type f -printf '%s %T@\n');;
    esac
    /usr/bin/time -f "$v %e s wall, %U+%S s CPU, %M KB peak RSS" "${cmd[@]}" > /dev/null
  done
done
