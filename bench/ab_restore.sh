#!/bin/bash
# A/B/s5cmd restore rounds, interleaved: one hoard push of $DATA into a fresh bucket (by B), then
# ROUNDS rounds in which A, B and s5cmd in turn (the order rotates) download it into empty folders.
#   E=http://127.0.0.1:PORT DATA=DIR A=/path/to/checkout-a B=/path/to/checkout-b S5=s5cmd bench/ab_restore.sh
# Each checkout runs with its own .venv; appends "round tool wall user sys KB" lines to $OUT/times.txt.
HERE=$(cd "$(dirname "$0")" && pwd)
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
E=${E:?endpoint}
DATA=${DATA:?folder to push once and restore}
W=${OUT:-/tmp/ab-restore}; mkdir -p $W
S5=${S5:-s5cmd}
A=${A:?checkout A}
B=${B:?checkout B}
TF='%e wall %U user %S sys %M KB'
b=ab-restore-$RANDOM$RANDOM
$B/.venv/bin/python $HERE/bucket.py new $b $E
$B/.venv/bin/python -m hoard push $DATA --to s3://$b/p --endpoint-url $E --path-style --catalog $W/$b.sqlite -q --workers 8
want=$(find $DATA -type f | wc -l)
run() { # tool round
  local t=$1 r=$2
  rm -rf $W/out-$t; sync
  if [ $t = S ]; then
    /usr/bin/time -f "$r $t $TF" -a -o $W/times.txt $S5 --endpoint-url $E --log error --numworkers 8 cp --concurrency 8 --part-size 16 "s3://$b/p/*" $W/out-$t/ >/dev/null
  else
    local root; [ $t = A ] && root=$A || root=$B
    (cd $root && /usr/bin/time -f "$r $t $TF" -a -o $W/times.txt $root/.venv/bin/python -m hoard restore s3://$b/p --to $W/out-$t --endpoint-url $E --path-style --catalog $W/$b-$t.sqlite -q --workers 8)
  fi
  n=$(find $W/out-$t -type f | wc -l)
  [ "$n" = "$want" ] || echo "$r $t restored $n of $want files" >> $W/times.txt
  rm -f $W/$b-$t.sqlite*
}
for r in ${ROUNDS:-1 2 3}; do
  case $((r % 3)) in 1) order="A B S";; 2) order="B S A";; 0) order="S A B";; esac
  for t in $order; do
    [ $t != S ] && cp $W/$b.sqlite $W/$b-$t.sqlite
    run $t $r
  done
done
$B/.venv/bin/python $HERE/bucket.py drop $b $E
