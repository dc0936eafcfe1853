#!/usr/bin/env bash
# Self-test of pchat-check (tests/checker/): crafted logs, a passing case and one case per
# violation and per kind of malformed input; asserts exit codes and the reported text.
#   tests/checker/selftest.sh [path/to/pchat-check]
# Default binary: ${PCHAT_BUILD:-build}/bin/pchat-check (relative to the repository root).
# Ends with "pchat-summary: P passed, F failed" (the format tests/run sums).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${PCHAT_BUILD:-build}/bin/pchat-check}
case $bin in /*) ;; *) [ -e "$bin" ] || bin=$root/$bin ;; esac
if [ ! -x "$bin" ]; then
  echo "selftest: no checker binary at $bin (run make first)"
  echo "pchat-summary: 0 passed, 1 failed"
  exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/pchat-check-selftest.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
want_nv=1

# w FILE: writes stdin to FILE with every | turned into a TAB (texts here contain no |).
w() { tr '|' '\t' >"$1"; }
# app FILE LINE...: appends lines (| = TAB).
app() { local f=$1; shift; printf '%s\n' "$@" | tr '|' '\t' >>"$f"; }
# edit FILE OLD [NEW]: replaces the line that is exactly OLD by NEW (| = TAB); no NEW deletes it.
edit() {
  local f=$1 old new
  old=$(printf '%s' "$2" | tr '|' '\t')
  new=$(printf '%s' "${3-}" | tr '|' '\t')
  OLD=$old NEW=$new DEL=${3+keep} awk '
    $0 == ENVIRON["OLD"] { found = 1; if (ENVIRON["DEL"] == "keep") print ENVIRON["NEW"]; next }
    { print }
    END { if (!found) exit 3 }' "$f" >"$f.tmp" || { echo "selftest: fixture: no line '$2' in $f"; exit 1; }
  mv "$f.tmp" "$f"
}
# edit_nodes OLD [NEW]: edit on every node dump.
edit_nodes() { local n; for n in n1 n2 n3; do edit "$d/$n.log" "$@"; done; }
app_nodes() { local n; for n in n1 n2 n3; do app "$d/$n.log" "$@"; done; }

# The passing run: alice and bob in room r1 (alice also posts to r2, never committed), three
# nodes with identical histories. Covers: an escaped text, an ack without seq, a refused post,
# an unknown post that was committed and one that was not, a rejoin that skips a seq.
base() {
  d=$T/$1
  mkdir -p "$d"
  w "$d/alice.log" <<'EOF'
# a comment, then the client line
C|alice
J|r1
S|r1|1|alice-1 hello
R|r1|1|alice|alice-1 hello
A|1|1
S|r1|2|alice-2 tab\tand \\ backslash\nnewline
R|r1|2|alice|alice-2 tab\tand \\ backslash\nnewline
A|2

S|r1|3|alice-3 refused
F|3|SIP 403 Forbidden
S|r1|4|alice-4 lost
U|4|connection reset
S|r2|5|alice-5 elsewhere
U|5
EOF
  w "$d/bob.log" <<'EOF'
C|bob
J|r1
R|r1|1|alice|alice-1 hello
R|r1|2|alice|alice-2 tab\tand \\ backslash\nnewline
S|r1|1|bob-1 hi
R|r1|3|bob|bob-1 hi
A|1|3
S|r1|2|bob-2 away
A|2|
J|r1
S|r1|3|bob-3 back
R|r1|5|bob|bob-3 back
A|3|5
R|r1|6|alice|alice-4 lost
EOF
  local n
  for n in n1 n2 n3; do
    w "$d/$n.log" <<EOF
N|$n
H|r1|1|alice|alice-1 hello
H|r1|2|alice|alice-2 tab\\tand \\\\ backslash\\nnewline
H|r1|3|bob|bob-1 hi
H|r1|4|bob|bob-2 away
H|r1|5|bob|bob-3 back
H|r1|6|alice|alice-4 lost
EOF
  done
}

# expect NAME RC PATTERN [OPTIONS...]: runs the checker on $d's logs; RC and the fixed-string
# PATTERN in its output must match.
expect() {
  local name=$1 want_rc=$2 pat=$3
  shift 3
  local out rc
  out=$("$bin" "$@" "$d"/alice.log "$d"/bob.log "$d"/n1.log "$d"/n2.log "$d"/n3.log 2>&1)
  rc=$?
  check_result "$name" "$want_rc" "$pat" "$rc" "$out"
}

# check_result NAME WANT_RC PATTERN RC OUTPUT
check_result() {
  local name=$1 want_rc=$2 pat=$3 rc=$4 out=$5 why=""
  [ "$rc" -eq "$want_rc" ] || why="exit $rc, want $want_rc"
  [ -z "$why" ] && ! grep -qF -- "$pat" <<<"$out" && why="output lacks '$pat'"
  if [ "$want_rc" -eq 1 ] && [ -z "$why" ]; then
    # exactly one violation (want_nv with --all), then the counts line
    local nv
    nv=$(grep -c '^pchat-check: VIOLATION: ' <<<"$out")
    [ "$nv" -eq "$want_nv" ] || why="$nv VIOLATION lines, want $want_nv"
    tail -n1 <<<"$out" | grep -qE '^pchat-check: [0-9]+ clients, .* deliveries checked$' ||
      why="last line is not the counts line"
  fi
  if [ -z "$why" ]; then
    pass=$((pass + 1))
    echo "ok   $name"
  else
    fail=$((fail + 1))
    echo "FAIL $name: $why"
    sed 's/^/     | /' <<<"$out"
  fi
}

# --- passing runs ------------------------------------------------------------------------
base ok
expect "pass: consistent run" 0 \
  "pchat-check: OK: 2 clients, 3 nodes, 2 rooms, 8 sent, 5 acked, 1 refused, 2 unknown (1 committed), 7 deliveries checked"

out=$("$bin" --help 2>&1); rc=$?
check_result "pass: --help documents the format" 0 "R <room> <seq> <author> <text>" "$rc" "$out"

base lag
edit "$d/n3.log" "H|r1|6|alice|alice-4 lost"
expect "pass: --allow-lag accepts a node lagging by a prefix" 0 "pchat-check: OK:" --allow-lag

base lagacked
edit "$d/n3.log" "H|r1|6|alice|alice-4 lost"
edit "$d/n3.log" "H|r1|5|bob|bob-3 back"
expect "pass: --allow-lag: an acked post may be missing from a lagging node" 0 "pchat-check: OK:" --allow-lag

base gaps
edit_nodes "H|r1|6|alice|alice-4 lost" "H|r1|8|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost" "R|r1|8|alice|alice-4 lost"
expect "pass: --allow-gaps accepts holes in seq, delivery 5 -> 8 is contiguous" 0 "pchat-check: OK:" --allow-gaps

base foreignok
app_nodes "H|r1|7|mallory|spam"
expect "pass: --allow-foreign" 0 "pchat-check: OK:" --allow-foreign

base clientsonly
out=$("$bin" "$d"/alice.log "$d"/bob.log 2>&1); rc=$?
check_result "pass: client logs only" 0 "OK: 2 clients, 0 nodes" "$rc" "$out"

base stdin
out=$("$bin" - "$d"/bob.log "$d"/n1.log <"$d"/alice.log 2>&1); rc=$?
check_result "pass: - reads stdin" 0 "OK: 2 clients, 1 nodes" "$rc" "$out"

# --- guarantee 1 ---------------------------------------------------------------------------
base lost
edit "$d/n2.log" "H|r1|5|bob|bob-3 back"
expect "1: acked post lost from one node" 1 \
  "VIOLATION: acked post lost: client bob msgid 3 \"bob-3 back\" is not in node n2's history of room r1 (" 

base lostall
edit_nodes "H|r1|6|alice|alice-4 lost"
edit_nodes "H|r1|5|bob|bob-3 back"
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|5|bob|bob-3 back"
expect "1: acked post lost everywhere (cites the ack line)" 1 \
  "is not in node n1's history of room r1 ($T/lostall/bob.log:12)"

base lostlag
edit_nodes "H|r1|6|alice|alice-4 lost"
edit_nodes "H|r1|5|bob|bob-3 back"
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|5|bob|bob-3 back"
expect "1: acked post lost everywhere, even with --allow-lag" 1 "VIOLATION: acked post lost" --allow-lag

base refused
app_nodes "H|r1|7|alice|alice-3 refused"
expect "1: refused post committed" 1 \
  "VIOLATION: refused post committed: client alice msgid 3 \"alice-3 refused\" (refused at $T/refused/alice.log:12: SIP 403 Forbidden) is seq 7 in node n1's history of room r1 ($T/refused/n1.log:8)"

base twice
app_nodes "H|r1|7|alice|alice-4 lost"
expect "1: unknown post committed twice" 1 \
  "VIOLATION: post committed twice: client alice msgid 4 \"alice-4 lost\" is seq 6 and seq 7 in node n1's history of room r1 ($T/twice/n1.log:8)"

base ackedtwice
app_nodes "H|r1|7|alice|alice-1 hello"
expect "1: acked post committed twice" 1 "VIOLATION: post committed twice: client alice msgid 1"

# --- guarantee 2 ---------------------------------------------------------------------------
base order
awk 'NR==4{l=$0; next} NR==5{print; print l; next} {print}' "$d/n2.log" >"$d/n2.tmp"
mv "$d/n2.tmp" "$d/n2.log"
expect "2: history not in seq order" 1 \
  "VIOLATION: history not in seq order: node n2 room r1 has seq 3 after seq 4 ($T/order/n2.log:5)" \
  --allow-gaps
expect "2: history not in seq order, without --allow-gaps seen as a gap first" 1 \
  "VIOLATION: history gap: node n2 room r1 lacks seq 3 (next is seq 4) ($T/order/n2.log:4)"

base gap
edit_nodes "H|r1|6|alice|alice-4 lost" "H|r1|8|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost" "R|r1|8|alice|alice-4 lost"
expect "2: gap in history seqs" 1 \
  "VIOLATION: history gap: node n1 room r1 lacks seq 6..7 (next is seq 8) ($T/gap/n1.log:7)"

base disagree
edit "$d/n3.log" "H|r1|2|alice|alice-2 tab\\tand \\\\ backslash\\nnewline" \
  "H|r1|2|mallory|alice-2 tab\\tand \\\\ backslash\\nnewline"
expect "2: histories disagree at a seq" 1 \
  "VIOLATION: histories disagree: room r1 seq 2 is mallory: \"alice-2 tab\\tand \\\\ backslash\\nnewline\" at node n3 but alice: "

base laggy
edit "$d/n3.log" "H|r1|6|alice|alice-4 lost"
expect "2: a lagging node without --allow-lag" 1 \
  "VIOLATION: history lag: node n3 lacks room r1 seq 6 (alice: \"alice-4 lost\") that node n1 has ($T/laggy/n1.log:7)"

base hole
edit "$d/n3.log" "H|r1|4|bob|bob-2 away"
expect "2: --allow-lag still needs a prefix (hole in the middle)" 1 \
  "VIOLATION: history hole: node n3 lacks room r1 seq 4 (bob: \"bob-2 away\") that node n1 has ($T/hole/n1.log:5)" \
  --allow-lag --allow-gaps

# two unknown posts, each committed on some node only, at different / the same seq
base diverge
app "$d/alice.log" "S|r1|6|alice-6" "U|6"
app "$d/bob.log" "S|r1|4|bob-4" "U|4"
app "$d/n1.log" "H|r1|8|bob|bob-4"
app "$d/n3.log" "H|r1|7|alice|alice-6"
expect "2: a node holds a seq the longest history lacks" 1 \
  "VIOLATION: histories diverge: node n3 has room r1 seq 7 (alice: \"alice-6\") that node n1 (the longest history) lacks ($T/diverge/n3.log:8)" \
  --allow-lag --allow-gaps

base split
app "$d/alice.log" "S|r1|6|alice-6" "U|6"
app "$d/bob.log" "S|r1|4|bob-4" "U|4"
app "$d/n1.log" "H|r1|7|bob|bob-4"
app "$d/n2.log" "H|r1|7|bob|bob-4"
app "$d/n3.log" "H|r1|7|alice|alice-6"
expect "2: two nodes with different messages at the same seq" 1 \
  "VIOLATION: histories disagree: room r1 seq 7 is alice: \"alice-6\" at node n3 but bob: \"bob-4\" at node n1 ($T/split/n1.log:8) ($T/split/n3.log:8)"

# --- guarantee 3 ---------------------------------------------------------------------------
base dgap
edit "$d/bob.log" "R|r1|2|alice|alice-2 tab\\tand \\\\ backslash\\nnewline"
expect "3: delivery gap between joins" 1 \
  "VIOLATION: delivery gap: client bob room r1 got seq 3 after seq 1, missed seq 2 (live since line 2) ($T/dgap/bob.log:5)"

base dgapgaps
edit_nodes "H|r1|6|alice|alice-4 lost" "H|r1|8|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost" "R|r1|8|alice|alice-4 lost"
edit "$d/bob.log" "R|r1|5|bob|bob-3 back"
edit "$d/bob.log" "J|r1"
app "$d/bob.log" "J|r1"
expect "3: delivery gap across a hole in seqs (--allow-gaps)" 1 \
  "VIOLATION: delivery gap: client bob room r1 got seq 8 after seq 3, missed seq 4" --allow-gaps

base dup
app "$d/bob.log" "R|r1|3|bob|bob-1 hi"
expect "3: duplicate delivery (also across a rejoin)" 1 \
  "VIOLATION: duplicate delivery: client bob room r1 seq 3 was already delivered at line 6 ($T/dup/bob.log:15)"

base reorder
edit "$d/alice.log" "R|r1|1|alice|alice-1 hello"
app "$d/alice.log" "R|r1|1|alice|alice-1 hello"
expect "3: delivery out of order" 1 \
  "VIOLATION: delivery out of order: client alice room r1 got seq 1 after seq 2 (line 7) ($T/reorder/alice.log:16)"

base differs
edit "$d/alice.log" "R|r1|1|alice|alice-1 hello" "R|r1|1|alice|alice-1 HELLO"
expect "3: delivery differs from history" 1 \
  "VIOLATION: delivery differs from history: client alice room r1 seq 1 is alice: \"alice-1 HELLO\" but node n1 has alice: \"alice-1 hello\" ($T/differs/n1.log:2) ($T/differs/alice.log:5)"

base ghost
app "$d/alice.log" "R|r1|7|bob|bob-9 ghost"
expect "3: delivered message in no history" 1 \
  "VIOLATION: delivered message not in history: client alice room r1 seq 7 (bob: \"bob-9 ghost\") is not in node n1's history (the longest)"

base ackseq
edit "$d/bob.log" "A|1|3" "A|1|4"
expect "3: ack seq differs from the history" 1 \
  "VIOLATION: ack seq mismatch: client bob msgid 1 \"bob-1 hi\" was acked as seq 4 but is seq 3 in node n1's history of room r1 ($T/ackseq/bob.log:7)"

# without node dumps, deliveries are checked against each other
clients_only() {  # NAME PATTERN
  out=$("$bin" "$d"/alice.log "$d"/bob.log 2>&1); rc=$?
  check_result "$1" 1 "$2" "$rc" "$out"
}
base nonodes1
edit "$d/bob.log" "R|r1|1|alice|alice-1 hello" "R|r1|1|alice|alice-1 hullo"
clients_only "3 (no nodes): two clients see different messages at one seq" \
  "VIOLATION: deliveries disagree: client bob room r1 seq 1 is alice: \"alice-1 hullo\" but client alice got alice: \"alice-1 hello\" ($T/nonodes1/alice.log:5) ($T/nonodes1/bob.log:3)"
base nonodes2
edit "$d/bob.log" "R|r1|6|alice|alice-4 lost" "R|r1|7|alice|alice-1 hello"
clients_only "3 (no nodes): one post delivered at two seqs" \
  "VIOLATION: post delivered at two seqs: client alice msgid 1 \"alice-1 hello\" is seq 7 here but seq 1 at client alice"
base nonodes3
edit "$d/bob.log" "A|3|5" "A|3|4"
clients_only "3 (no nodes): ack seq differs from the delivered seq" \
  "VIOLATION: ack seq mismatch: client bob msgid 3 \"bob-3 back\" was acked as seq 4 but delivered as seq 5 at client bob"
base nonodes4
app "$d/bob.log" "R|r1|7|alice|alice-3 refused"
clients_only "3 (no nodes): refused post delivered" \
  "VIOLATION: refused post delivered: client alice msgid 3 \"alice-3 refused\""

# --- guarantee 4 ---------------------------------------------------------------------------
base foreign
app_nodes "H|r1|7|mallory|spam"
expect "4: foreign message" 1 \
  "VIOLATION: foreign message: node n1 room r1 seq 7 (mallory: \"spam\") was sent by no client log ($T/foreign/n1.log:8)"

base author
edit_nodes "H|r1|4|bob|bob-2 away" "H|r1|4|carol|bob-2 away"
expect "4: history author is not the sender" 1 \
  "VIOLATION: author mismatch: node n1 room r1 seq 4 \"bob-2 away\" has author carol but client bob sent it" \
  --allow-foreign

# --- --all -----------------------------------------------------------------------------------
base all
app_nodes "H|r1|7|mallory|spam"
edit "$d/bob.log" "R|r1|2|alice|alice-2 tab\\tand \\\\ backslash\\nnewline"
want_nv=4
expect "--all reports every violation (1 delivery gap + 3 foreign)" 1 "delivery gap" --all
want_nv=1

# --- malformed input -------------------------------------------------------------------------
malformed() {  # NAME PATTERN FILE-CONTENT (| = TAB)
  local name=$1 pat=$2
  d=$T/bad$((pass + fail))
  mkdir -p "$d"
  printf '%s\n' "$3" | w "$d/x.log"
  out=$("$bin" "$d/x.log" 2>&1); rc=$?
  check_result "malformed: $name" 2 "pchat-check: $d/x.log:$pat" "$rc" "$out"
}
malformed "bad escape" "3: field 4: bad escape" $'C|alice\nS|r1|1|one\nS|r1|2|two \\q'
malformed "trailing backslash" "2: field 4: bad escape" $'C|alice\nS|r1|1|one\\'
malformed "no C/N first" "1: the first record must be C <client> or N <node>" $'S|r1|1|x'
d=$T/empty; mkdir -p "$d"; : >"$d/x.log"
out=$("$bin" "$d/x.log" 2>&1); rc=$?
check_result "malformed: empty file" 2 "pchat-check: $d/x.log:0: no records" "$rc" "$out"
malformed "only an empty line" "1: no records" ''
malformed "ack for unknown msgid" "2: A for msgid '9' that no earlier S sent" $'C|alice\nA|9'
malformed "two outcomes" "4: msgid 1 already has outcome A at line 3" $'C|alice\nS|r1|1|x\nA|1\nU|1'
malformed "duplicate msgid" "3: msgid 1 already sent at line 2" $'C|alice\nS|r1|1|x\nS|r1|1|y'
malformed "H in a client log" "2: H record in a client log" $'C|alice\nH|r1|1|a|x'
malformed "R in a node dump" "2: client record type 'R' in a node dump" $'N|n1\nR|r1|1|a|x'
malformed "bad seq" "2: bad seq 'x1'" $'N|n1\nH|r1|x1|a|x'
malformed "seq 0 in history" "2: bad seq '0'" $'N|n1\nH|r1|0|a|x'
malformed "too few fields" "2: R needs 4 fields" $'C|a\nR|r1|1|a'
malformed "too many fields" "2: too many fields" $'C|a\nS|r1|1|x|y|z'
malformed "unknown type" "2: unknown record type 'X'" $'C|a\nX|r1'
malformed "long type" "2: record type 'SS' is not one letter" $'C|a\nSS|r1|1|x'
malformed "second C" "2: a second C record" $'C|a\nC|b'

d=$T/dups; mkdir -p "$d"
printf 'C\talice\nS\tr1\t1\tsame\n' >"$d/a.log"
printf 'C\tbob\nS\tr1\t1\tsame\n' >"$d/b.log"
printf 'C\talice\n' >"$d/c.log"
out=$("$bin" "$d/a.log" "$d/b.log" 2>&1); rc=$?
check_result "malformed: text not unique in a room" 2 \
  "pchat-check: $d/b.log:2: text not unique in room r1: also sent by client alice msgid 1 ($d/a.log:2)" "$rc" "$out"
out=$("$bin" "$d/a.log" "$d/c.log" 2>&1); rc=$?
check_result "malformed: two logs of one client" 2 "pchat-check: $d/c.log:1: client alice already has a log" "$rc" "$out"
out=$("$bin" "$d/missing.log" 2>&1); rc=$?
check_result "malformed: unreadable file" 2 "pchat-check: $d/missing.log:0: cannot read: No such file" "$rc" "$out"
out=$("$bin" "$d" 2>&1); rc=$?
check_result "malformed: a directory" 2 "pchat-check: $d:0: cannot read:" "$rc" "$out"
out=$("$bin" 2>&1); rc=$?
check_result "usage: no files" 2 "no input files" "$rc" "$out"
out=$("$bin" --bogus "$d/a.log" 2>&1); rc=$?
check_result "usage: unknown option" 2 "see pchat-check --help" "$rc" "$out"

# --- scale: 3 nodes x 50k messages, 10 clients; must pass well within the suite timeout -------
d=$T/scale; mkdir -p "$d"
awk -v T="$d" 'BEGIN {
  OFS = "\t"; nmsg = 50000; ncl = 10
  for (c = 0; c < ncl; c++) { f = T "/c" c ".log"; print "C", "cl" c > f; print "J", "room" (c % 4) > f }
  for (i = 1; i <= nmsg; i++) {
    c = i % ncl; room = "room" (c % 4); seq[room]++
    f = T "/c" c ".log"; txt = "cl" c "-" i " text\\twith tab"
    print "S", room, i, txt > f
    print "A", i, seq[room] > f
    for (n = 1; n <= 3; n++) print "H", room, seq[room], "cl" c, txt > (T "/n" n ".log.body")
    for (k = 0; k < ncl; k++) if (k % 4 == c % 4) print "R", room, seq[room], "cl" c, txt > (T "/c" k ".log")
  }
}'
for n in 1 2 3; do { printf 'N\tn%s\n' "$n"; cat "$d/n$n.log.body"; } >"$d/n$n.log"; rm "$d/n$n.log.body"; done
start=$(date +%s)
out=$("$bin" "$d"/c*.log "$d"/n1.log "$d"/n2.log "$d"/n3.log 2>&1); rc=$?
secs=$(( $(date +%s) - start ))
lines=$(cat "$d"/*.log | wc -l)
check_result "scale: $lines lines in ${secs}s" 0 \
  "OK: 10 clients, 3 nodes, 4 rooms, 50000 sent, 50000 acked, 0 refused, 0 unknown (0 committed), 130000 deliveries checked" \
  "$rc" "$out"

echo "pchat-summary: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
