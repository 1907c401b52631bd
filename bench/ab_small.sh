#!/bin/bash
# A/B/s5cmd, interleaved: 2,000 x 4 KiB first push into a fresh bucket, then restore of it.
#   E=http://127.0.0.1:PORT DATA=DIR A=/path/to/checkout-a B=/path/to/checkout-b S5=s5cmd bench/ab_small.sh
# Each checkout runs with its own .venv; appends "round tool phase wall user sys KB" lines to $OUT/times.txt.
HERE=$(cd "$(dirname "$0")" && pwd)
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
E=${E:?endpoint}
DATA=${DATA:?folder of small files}
W=${OUT:-/tmp/ab-small}; mkdir -p $W
S5=${S5:-s5cmd}
A=${A:?checkout A}
B=${B:?checkout B}
TF='%e wall %U user %S sys %M KB'
run() { # tool round
  local t=$1 r=$2 b=ab-${1,,}-$r-$RANDOM
  $B/.venv/bin/python $HERE/bucket.py new $b $E
  rm -rf $W/out-$t; sync
  case $t in
    A) cd $A; PY=$A/.venv/bin/python;;
    B) cd $B; PY=$B/.venv/bin/python;;
  esac
  if [ $t = S ]; then
    /usr/bin/time -f "$r $t push $TF" -a -o $W/times.txt $S5 --endpoint-url $E --log error --numworkers 8 cp "$DATA/*" s3://$b/p/ >/dev/null
    sync
    /usr/bin/time -f "$r $t restore $TF" -a -o $W/times.txt $S5 --endpoint-url $E --log error --numworkers 8 cp "s3://$b/p/*" $W/out-$t/ >/dev/null
  else
    /usr/bin/time -f "$r $t push $TF" -a -o $W/times.txt $PY -m hoard push $DATA --to s3://$b/p --endpoint-url $E --path-style --catalog $W/$b.sqlite -q --workers 8
    sync
    /usr/bin/time -f "$r $t restore $TF" -a -o $W/times.txt $PY -m hoard restore s3://$b/p --to $W/out-$t --endpoint-url $E --path-style --catalog $W/$b.sqlite -q --workers 8
  fi
  n=$(find $W/out-$t -type f | wc -l); echo "$r $t files restored: $n" >> $W/times.txt
  $B/.venv/bin/python $HERE/bucket.py drop $b $E
}
for r in ${ROUNDS:-1 2 3}; do
  case $r in 1) order="A B S";; 2) order="B S A";; 3) order="S A B";; *) order="A B S";; esac
  for t in $order; do run $t $r; done
done
