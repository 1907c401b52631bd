#!/bin/bash
# Interleaved restore rounds: one hoard push of $DATA into a fresh bucket, then ROUNDS rounds in
# which each checkout and s5cmd in turn (the order rotates) download it into empty folders.
#   E=http://127.0.0.1:PORT DATA=DIR A=/path/to/checkout-a B=/path/to/checkout-b S5=s5cmd bench/ab_restore.sh
#   E=… DATA=… TOOLS="A=/path/a B=/path/b C=/path/c" S5=… ROUNDS=6 bench/ab_restore.sh
# Each checkout runs with its own .venv (point its editable install at its own src); appends
# "round tool wall user sys KB" lines to $OUT/times.txt and prints each tool's means.
HERE=$(cd "$(dirname "$0")" && pwd)
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
E=${E:?endpoint}
DATA=${DATA:?folder to push once and restore}
W=${OUT:-/tmp/ab-restore}; mkdir -p $W
S5=${S5:-s5cmd}
TOOLS=${TOOLS:-"A=${A:?checkout A} B=${B:?checkout B}"}
TF='%e wall %U user %S sys %M KB'
declare -A ROOT; names=""
for kv in $TOOLS; do ROOT[${kv%%=*}]=${kv#*=}; names="$names ${kv%%=*}"; done
names="$names S"
first=${TOOLS%% *}; first=${first#*=}
b=ab-restore-$RANDOM$RANDOM
$first/.venv/bin/python $HERE/bucket.py new $b $E
$first/.venv/bin/python -m hoard push $DATA --to s3://$b/p --endpoint-url $E --path-style --catalog $W/$b.sqlite -q --workers 8 >/dev/null
want=$(find $DATA -type f | wc -l)
run() { # tool round
  local t=$1 r=$2
  rm -rf $W/out-$t; sync
  if [ $t = S ]; then
    /usr/bin/time -f "$r $t $TF" -a -o $W/times.txt $S5 --endpoint-url $E --log error --numworkers 8 cp --concurrency 8 --part-size 16 "s3://$b/p/*" $W/out-$t/ >/dev/null
  else
    local root=${ROOT[$t]}
    cp $W/$b.sqlite $W/$b-$t.sqlite
    (cd $root && /usr/bin/time -f "$r $t $TF" -a -o $W/times.txt $root/.venv/bin/python -m hoard restore s3://$b/p --to $W/out-$t --endpoint-url $E --path-style --catalog $W/$b-$t.sqlite -q --workers 8 >/dev/null)
    rm -f $W/$b-$t.sqlite*
  fi
  local n=$(find $W/out-$t -type f | wc -l)
  [ "$n" = "$want" ] || echo "$r $t restored $n of $want files" >> $W/times.txt
}
arr=($names); ntools=${#arr[@]}
for r in ${ROUNDS:-1 2 3}; do
  for i in $(seq 0 $((ntools - 1))); do run ${arr[$(((i + r) % ntools))]} $r; done
done
$first/.venv/bin/python $HERE/bucket.py drop $b $E
awk '$4 == "wall" {w[$2] += $3; c[$2] += $5 + $7; k[$2]++; all[$2] = all[$2] " " $3}
     END {for (t in w) printf "%s wall mean %.2f s, CPU mean %.2f s, n=%d:%s\n", t, w[t] / k[t], c[t] / k[t], k[t], all[t]}' $W/times.txt | sort
